"""Pairwise ranking prompting (PRP): "Large Language Models are Effective Text Rankers with Pairwise
Ranking Prompting" (Qin et al., 2023).

Every comparison asks both orders, (A=i, B=j) and (A=j, B=i), to cancel the position bias small models
have. From the next-token log-probabilities of " A" and " B" (after a pre-filled "Passage"),
``p(i before j) = (P(A | i,j) + P(B | j,i)) / 2`` with each order's two-way probabilities normalised.

Variants (as in the paper):

- ``allpairs``: every pair, both orders, in one batched call; the paper's aggregation: ``i`` earns 1
  for a pair where both orders prefer it, 0.5 when the two orders disagree; ties keep the first-stage
  order. O(n^2) prompts.
- ``sorting``: heapsort with the pairwise preference as comparator, stopped after the top ``k``
  (PRP-Sorting); O(n log n) comparisons, sequential.
- ``sliding``: ``k`` bubble-sort passes from the bottom to the top (PRP-Sliding-k); each pass brings
  one more document to its place at the top; O(k n) comparisons.

Documents below the top ``k`` of ``sorting``/``sliding`` keep their first-stage order under it.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from rankstack.errors import InputError
from rankstack.llm.base import LLMBackend
from rankstack.registry import Context, register
from rankstack.rerank.base import DocumentSource
from rankstack.rerank.llm.base import LLMPrecision, LLMStage, backend_from, check_positive, order_to_scores
from rankstack.rerank.llm.prompts import PRP_CHOICES, prp_prompt

__all__ = ["PRPReranker", "prp_allpairs_scores", "VARIANTS"]

VARIANTS = ("allpairs", "sorting", "sliding")


def _two_way(lp: np.ndarray) -> np.ndarray:
    """P(first choice) within {A, B} per row of ``[n, 2]`` log-probabilities."""
    return 1.0 / (1.0 + np.exp(lp[:, 1] - lp[:, 0]))


def prp_allpairs_scores(pref: np.ndarray) -> np.ndarray:
    """Scores from ``pref[i, j] = p(i before j)`` (only i != j read): 1 per pair won in both orders'
    averaged sense (> 0.5 in each order, encoded by ``pref`` 1.0 / 0.0 / 0.5), 0.5 for a split decision."""
    n = len(pref)
    score = np.zeros(n)
    for i in range(n):
        for j in range(n):
            if i != j:
                score[i] += pref[i, j]
    return score


class PRPReranker(LLMStage):
    """See the module docstring."""

    name = "llm_prp"
    strategy = "prp"

    def __init__(self, backend: LLMBackend, documents: DocumentSource = None, variant: str = "sorting",
                 k: int = 10, depth: int | None = 20, max_passage_tokens: int | None = 100,
                 progress: bool = False) -> None:
        super().__init__(backend, documents, depth, max_passage_tokens, progress)
        if variant not in VARIANTS:
            raise InputError(f"llm_prp: unknown variant {variant!r}", fix=f"choose one of {', '.join(VARIANTS)}")
        check_positive("k", k)
        self.variant, self.k = variant, k
        self.name = f"llm_prp_{variant}"
        self.strategy = f"prp-{variant}"
        self.check_window(2)

    def _prefs(self, query: str, docs: list[str], pairs: list[tuple[int, int]]) -> list[tuple[float, float]]:
        """For each (i, j): P(A) with i as A, and P(B) with j as A (both say "i first" when high)."""
        prompts = []
        for i, j in pairs:
            prompts += [prp_prompt(query, docs[i], docs[j]), prp_prompt(query, docs[j], docs[i])]
        p_a = _two_way(self.backend.next_token_logprobs(prompts, list(PRP_CHOICES)))
        return [(p_a[2 * m], 1.0 - p_a[2 * m + 1]) for m in range(len(pairs))]

    def rank_query(self, query: str, docs: list[str]) -> np.ndarray:
        n = len(docs)
        if n < 2:
            return np.ones(n)
        memo: dict[tuple[int, int], float] = {}

        def prefer(i: int, j: int) -> float:
            """p(i before j), averaged over the two orders."""
            if (i, j) not in memo:
                fwd, bwd = self._prefs(query, docs, [(i, j)])[0]
                memo[(i, j)] = (fwd + bwd) / 2
                memo[(j, i)] = 1.0 - memo[(i, j)]
            return memo[(i, j)]

        if self.variant == "allpairs":
            pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
            pref = np.full((n, n), 0.5)
            for (i, j), (fwd, bwd) in zip(pairs, self._prefs(query, docs, pairs)):
                win = 1.0 if (fwd > 0.5 and bwd > 0.5) else 0.0 if (fwd < 0.5 and bwd < 0.5) else 0.5
                pref[i, j], pref[j, i] = win, 1.0 - win
            score = prp_allpairs_scores(pref)
            return score - np.arange(n) * 1e-6  # ties: first-stage order
        top = min(self.k, n)
        if self.variant == "sliding":
            ranking = list(range(n))
            for p in range(top):
                for pos in range(n - 2, p - 1, -1):
                    if prefer(ranking[pos + 1], ranking[pos]) > 0.5:
                        ranking[pos], ranking[pos + 1] = ranking[pos + 1], ranking[pos]
            return order_to_scores(ranking)
        return order_to_scores(_heap_top_k(n, top, prefer))


def _heap_top_k(n: int, k: int, prefer) -> list[int]:
    """Heapsort with a pairwise comparator (max-heap by preference), stopped after ``k`` extractions;
    the rest keep their original order below the top ``k``."""
    heap = list(range(n))

    def better(a: int, b: int) -> bool:  # a strictly before b (ties: the earlier first-stage rank)
        p = prefer(a, b)
        return p > 0.5 or (p == 0.5 and a < b)

    def sift(start: int, size: int) -> None:
        root = start
        while True:
            child = 2 * root + 1
            if child >= size:
                return
            if child + 1 < size and better(heap[child + 1], heap[child]):
                child += 1
            if better(heap[child], heap[root]):
                heap[root], heap[child] = heap[child], heap[root]
                root = child
            else:
                return

    for start in range(n // 2 - 1, -1, -1):
        sift(start, n)
    out = []
    size = n
    for _ in range(k):
        out.append(heap[0])
        size -= 1
        heap[0] = heap[size]
        sift(0, size)
    rest = sorted(set(range(n)) - set(out))
    return out + rest


@register("llm_prp", kind="reranker")
def build_llm_prp(context: Context | None = None, model: str = "smollm2",
                  variant: Literal["allpairs", "sorting", "sliding"] = "sorting", k: int = 10,
                  depth: int | None = 20, max_passage_tokens: int | None = 100, batch_size: int = 8,
                  threads: int | None = None, cache: bool = True, api_model: str | None = None,
                  timeout: float = 60.0, retries: int = 3, progress: bool = False,
                  precision: LLMPrecision = "auto") -> PRPReranker:
    """``bm25 % 20 >> llm_prp(variant='sorting', k=10)``: pairwise ranking prompting, both orders."""
    backend = backend_from(model, context, cache, threads, batch_size, api_model, timeout, retries,
                           precision=precision)
    return PRPReranker(backend, documents=context.collection if context else None, variant=variant, k=k,
                       depth=depth, max_passage_tokens=max_passage_tokens, progress=progress)
