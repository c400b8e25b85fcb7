"""What every LLM ranking strategy shares: the backend, document texts, truncation, per-query cost.

Why a base Stage: the strategies differ only in how they turn one query and its top-``depth`` texts
into an order (``rank_query``); fetching texts, truncating passages to ``max_passage_tokens`` (as
RankGPT does), reading an empty document as ``(empty document)``, naming the query in any backend
error, keeping the tail below the reranked head and recording each query's LLM cost are common.

Cost: the backend's usage is read before and after each query; the difference (prompt tokens,
generated tokens, seconds, calls, cache hits) is stored per query in the output Run's
``metadata["llm"]`` with the totals, so an experiment can report it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from rankstack.errors import InputError
from rankstack.llm.base import LLMBackend, Usage
from rankstack.pipeline.stage import Stage, StageInput, queries_of
from rankstack.registry import Context
from rankstack.rerank.base import DocumentSource, _doc_lookup
from rankstack.rerank.llm.prompts import EMPTY_DOC
from rankstack.types import Run

__all__ = ["LLMStage", "LLMPrecision", "backend_from", "cost_metadata", "check_positive"]

# what a strategy's ``precision=`` accepts (see rankstack.llm.transformers_backend); a Literal, so a pipeline
# expression with another value fails naming the strategy and the argument
LLMPrecision = Literal["auto", "fp32", "bf16"]


def check_positive(name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name} must be a positive integer{' or None' if allow_none else ''}, got {value!r}")


def backend_from(model: str | LLMBackend, context: Context | None, cache: bool = True, threads: int | None = None,
                 batch_size: int = 8, api_model: str | None = None, timeout: float = 60.0,
                 retries: int = 3, context_length: int | None = None, precision: LLMPrecision = "auto") -> LLMBackend:
    """The backend a registered strategy asks for, cached under the context's cache folder."""
    from rankstack.llm.models import load_backend

    cache_dir = context.cache_dir if context is not None else None
    return load_backend(model, cache_dir=cache_dir, cache=cache, threads=threads, batch_size=batch_size,
                        api_model=api_model, timeout=timeout, retries=retries, context_length=context_length,
                        precision=precision)


def cost_metadata(backend: LLMBackend, strategy: str, per_query: dict[str, Usage]) -> dict[str, Any]:
    total = Usage()
    for u in per_query.values():
        total.add(u.prompt_tokens, u.generated_tokens, u.seconds, u.calls, u.cache_hits)
    return {"model": backend.name, "strategy": strategy, "total": total.to_dict(),
            "per_query": {q: u.to_dict() for q, u in per_query.items()}}


class LLMStage(Stage):
    """Base of the listwise/pairwise/attention strategies. Subclasses implement :meth:`rank_query`."""

    name = "llm"
    strategy = "llm"

    def __init__(self, backend: LLMBackend, documents: DocumentSource = None, depth: int | None = 20,
                 max_passage_tokens: int | None = 100, progress: bool = False) -> None:
        check_positive("depth", depth, allow_none=True)
        check_positive("max_passage_tokens", max_passage_tokens, allow_none=True)
        self.backend = backend
        self.documents = documents
        self._lookup = _doc_lookup(documents)
        self.depth = depth
        self.max_passage_tokens = max_passage_tokens
        self.progress = progress
        self.last_repairs: dict[str, int] = {}

    # subclasses --------------------------------------------------------------------------------
    def rank_query(self, query: str, docs: list[str]) -> np.ndarray:
        """Scores of ``docs`` (higher = better); order-producing strategies return ``n - position``."""
        raise NotImplementedError

    # shared ------------------------------------------------------------------------------------
    def passages(self, texts: Sequence[str]) -> list[str]:
        """Texts as prompts show them: whitespace collapsed, empty ones read as EMPTY_DOC, truncated."""
        clean = [" ".join(str(t).split()) or EMPTY_DOC for t in texts]
        if self.max_passage_tokens:
            clean = self.backend.truncate(clean, self.max_passage_tokens)
        return clean

    def check_window(self, window: int | None) -> None:
        """Refuse a window that cannot fit the model's context even before any prompt is built."""
        if window is not None and self.max_passage_tokens and window * self.max_passage_tokens > \
                self.backend.context_length:
            raise InputError(f"{self.name}: a window of {window} passages of up to {self.max_passage_tokens} tokens "
                             f"({window * self.max_passage_tokens} tokens) exceeds the context length "
                             f"{self.backend.context_length} of model {self.backend.name!r}",
                             fix="use a smaller window or max_passage_tokens")

    def check_prompt(self, n_tokens: int, window: int) -> None:
        if n_tokens > self.backend.context_length:
            raise InputError(f"{self.name}: a window of {window} passages needs {n_tokens} prompt tokens but the "
                             f"context length of model {self.backend.name!r} is {self.backend.context_length}",
                             fix="use a smaller window or max_passage_tokens")

    def transform(self, inp: StageInput) -> Run:
        if not isinstance(inp, Run):
            raise InputError(f"{self.name} reranks a Run, got {type(inp).__name__}",
                             fix=f"put a first stage before it: 'bm25 % 20 >> {self.name}'")
        if self._lookup is None:
            raise InputError(f"{self.name} needs document texts but has no documents",
                             fix="pass documents=Collection(...) (or build it with a collection context)")
        queries = queries_of(inp, self.name)
        groups = list(inp.groups())
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(groups), desc=self.name, unit="query")
        qids, docids, scores = [], [], []
        costs: dict[str, Usage] = {}
        for q, d_all, _ in groups:
            head = d_all[: self.depth] if self.depth else d_all
            before = self.backend.usage.copy()
            try:
                rr = np.asarray(self.rank_query(queries[q], self.passages(self._lookup([str(x) for x in head]))),
                                dtype=np.float64)
            except InputError as exc:
                raise InputError(f"query {q!r}: {exc.problem}", path=exc.path, line=exc.line, fix=exc.fix) from None
            costs[q] = self.backend.usage.minus(before)
            tail = len(d_all) - len(head)
            if tail:
                rr = np.concatenate([rr, rr.min() - 1.0 - np.arange(tail, dtype=np.float64)])
            qids.append(np.full(len(d_all), q, dtype=object))
            docids.append(d_all)
            scores.append(rr)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        meta = {"llm": cost_metadata(self.backend, self.strategy, costs)}
        if not qids:
            return inp.replace(name=f"{inp.name} >> {self.name}", metadata={**inp.metadata, **meta})
        return Run(np.concatenate(qids).astype(str), np.concatenate(docids), np.concatenate(scores),
                   name=f"{inp.name} >> {self.name}", queries=queries, metadata=meta)


def order_to_scores(order: Sequence[int]) -> np.ndarray:
    """Scores ``n, n-1, ..., 1`` placing ``order[0]`` first (docid ties cannot arise)."""
    n = len(order)
    out = np.empty(n, dtype=np.float64)
    out[list(order)] = np.arange(n, 0, -1, dtype=np.float64)
    return out
