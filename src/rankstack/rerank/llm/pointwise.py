"""Pointwise LLM relevance: score = log P("Yes") - log P("No") as the answer's first token.

Why this score: it uses the model's whole belief in one forward pass per (query, passage) with no
generation, the relevance-generation scoring of "Holistic Evaluation of Language Models" (Liang et al.,
2022) and of pointwise LLM rankers compared in "A Setwise Approach to Effective and Highly Efficient
Zero-shot Ranking with Large Language Models" (Zhuang et al., 2024). As a ``PairScorer``, it batches
pairs by length and can be combined with the first stage (``combine='interpolate'|'rrf'``).

Per-query cost: pairs are scored query by query, so the backend's usage difference is one query's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rankstack.errors import InputError
from rankstack.llm.base import LLMBackend
from rankstack.pipeline.stage import StageInput
from rankstack.registry import Context, register
from rankstack.rerank.base import DocumentSource, PairScorer
from rankstack.rerank.llm.base import LLMPrecision, backend_from, check_positive, cost_metadata
from rankstack.rerank.llm.prompts import EMPTY_DOC, YES_NO, pointwise_prompt
from rankstack.types import Run

__all__ = ["PointwiseLLMReranker"]


class PointwiseLLMReranker(PairScorer):
    """``log P(Yes) - log P(No)`` per pair; passages truncated to ``max_passage_tokens``."""

    name = "llm_pointwise"
    strategy = "pointwise"  # the name in the cost metadata

    def __init__(self, backend: LLMBackend, documents: DocumentSource = None, depth: int | None = 20,
                 batch_size: int = 8, max_passage_tokens: int | None = 100, combine: str | None = None,
                 alpha: float = 0.5, norm: str = "zscore", rrf_k: int = 60, progress: bool = False) -> None:
        super().__init__(documents=documents, depth=depth, batch_size=batch_size, combine=combine, alpha=alpha,
                         norm=norm, rrf_k=rrf_k, progress=progress)
        check_positive("max_passage_tokens", max_passage_tokens, allow_none=True)  # as every LLM strategy
        self.backend = backend
        self.max_passage_tokens = max_passage_tokens

    def score_pairs(self, query_texts: Sequence[str], doc_texts: Sequence[str]) -> np.ndarray:
        docs = [" ".join(str(d).split()) or EMPTY_DOC for d in doc_texts]
        if self.max_passage_tokens:
            docs = self.backend.truncate(docs, self.max_passage_tokens)
        lp = self.backend.next_token_logprobs([pointwise_prompt(q, d) for q, d in zip(query_texts, docs)],
                                              list(YES_NO))
        return lp[:, 0] - lp[:, 1]

    def transform(self, inp: StageInput) -> Run:
        """Query by query (for per-query cost; one progress bar over the queries), then one Run with the
        costs in its metadata."""
        if not isinstance(inp, Run) or inp.queries is None:
            return super().transform(inp)  # the base class gives the clear error
        runs, costs = [], {}
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(inp.query_ids), desc=self.name, unit="query")
        try:
            for q in inp.query_ids:
                before = self.backend.usage.copy()
                try:
                    runs.append(self.rerank_run(inp.restrict([q]), progress=False))
                except InputError as exc:
                    raise InputError(f"query {q!r}: {exc.problem}", path=exc.path, line=exc.line,
                                     fix=exc.fix) from None
                costs[q] = self.backend.usage.minus(before)
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        out = Run.concat(runs, name=f"{inp.name} >> {self.name}") if runs else \
            inp.replace(name=f"{inp.name} >> {self.name}")
        return out.replace(metadata={"llm": cost_metadata(self.backend, self.strategy, costs)})


@register("llm_pointwise", kind="reranker")
def build_llm_pointwise(context: Context | None = None, model: str = "smollm2", depth: int | None = 20,
                        batch_size: int = 8, max_passage_tokens: int | None = 100, combine: str | None = None,
                        alpha: float = 0.5, norm: str = "zscore", threads: int | None = None, cache: bool = True,
                        api_model: str | None = None, timeout: float = 60.0, retries: int = 3,
                        progress: bool = False, precision: LLMPrecision = "auto") -> PointwiseLLMReranker:
    """``bm25 % 20 >> llm_pointwise(model='smollm2')``: yes/no log-odds of an LLM per passage."""
    backend = backend_from(model, context, cache, threads, batch_size, api_model, timeout, retries,
                           precision=precision)
    return PointwiseLLMReranker(backend, documents=context.collection if context else None, depth=depth,
                                batch_size=batch_size, max_passage_tokens=max_passage_tokens, combine=combine,
                                alpha=alpha, norm=norm, progress=progress)
