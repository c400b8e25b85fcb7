"""Query likelihood under a question-writing prompt: score = mean log P(query | passage) (UPR).

Why this score: the small instruct LLMs that ship offline (SmolLM2-135M) answer a yes/no relevance
question at chance, but they do write plausible questions for a passage (that is how ``rankstack
adapt`` makes its training queries). "Improving Passage Retrieval with Zero-Shot Question Generation"
(UPR; Sachan et al., EMNLP 2022) turns that ability into a relevance score: rerank by the average
log-likelihood of the query's tokens, teacher-forced after the passage and an instruction to write a
question for it. It needs no labels and no training. One forward pass per (query, passage) with
logits only at the query's positions (:meth:`rankstack.llm.base.LLMBackend.continuation_logprobs`).

It is a pointwise strategy and a ``PairScorer``: pairs are batched by length, each query's LLM cost
is recorded, and the score can be combined with the first stage (``combine='interpolate'|'rrf'``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rankstack.errors import InputError
from rankstack.llm.base import LLMBackend
from rankstack.registry import Context, register
from rankstack.rerank.base import DocumentSource
from rankstack.rerank.llm.base import LLMPrecision, backend_from
from rankstack.rerank.llm.pointwise import PointwiseLLMReranker
from rankstack.rerank.llm.prompts import EMPTY_DOC, query_likelihood_prompt

__all__ = ["QueryLikelihoodReranker"]


class QueryLikelihoodReranker(PointwiseLLMReranker):
    """The mean log-probability of the query's tokens after the passage (UPR). Passages are truncated to
    ``max_passage_tokens`` (200: the query generator's default, so both see the same text). The mean,
    not the sum: within one query both rank alike, and the mean keeps scores of short and long queries
    on one scale (what fusion and distillation margins compare)."""

    name = "llm_query_likelihood"
    strategy = "query_likelihood"

    def __init__(self, backend: LLMBackend, documents: DocumentSource = None, depth: int | None = 20,
                 batch_size: int = 8, max_passage_tokens: int | None = 200, combine: str | None = None,
                 alpha: float = 0.5, norm: str = "zscore", rrf_k: int = 60, progress: bool = False) -> None:
        super().__init__(backend, documents=documents, depth=depth, batch_size=batch_size,
                         max_passage_tokens=max_passage_tokens, combine=combine, alpha=alpha, norm=norm,
                         rrf_k=rrf_k, progress=progress)

    def score_pairs(self, query_texts: Sequence[str], doc_texts: Sequence[str]) -> np.ndarray:
        queries = [" ".join(str(q).split()) for q in query_texts]
        if not all(queries):
            raise InputError("a query is empty: a query likelihood needs query text", fix="drop empty queries")
        docs = [" ".join(str(d).split()) or EMPTY_DOC for d in doc_texts]
        if self.max_passage_tokens:
            docs = self.backend.truncate(docs, self.max_passage_tokens)
        # the query follows the pre-filled "Question:" after one space, as a generated question would
        values = self.backend.continuation_logprobs([query_likelihood_prompt(d) for d in docs],
                                                    [" " + q for q in queries])
        return np.array([float(np.mean(v)) for v in values])


@register("llm_query_likelihood", kind="reranker")
def build_llm_query_likelihood(context: Context | None = None, model: str = "smollm2", depth: int | None = 20,
                               batch_size: int = 8, max_passage_tokens: int | None = 200,
                               combine: str | None = None, alpha: float = 0.5, norm: str = "zscore",
                               threads: int | None = None, cache: bool = True,
                               progress: bool = False, precision: LLMPrecision = "auto") -> QueryLikelihoodReranker:
    """``bm25 % 20 >> llm_query_likelihood(model='smollm2')``: UPR's query likelihood per passage."""
    backend = backend_from(model, context, cache, threads, batch_size, precision=precision)
    return QueryLikelihoodReranker(backend, documents=context.collection if context else None, depth=depth,
                                   batch_size=batch_size, max_passage_tokens=max_passage_tokens,
                                   combine=combine, alpha=alpha, norm=norm, progress=progress)
