"""Listwise LLM reranking over sliding windows: by a generated permutation (RankGPT) or by the first
identifier's logits (FIRST); with ``window=None``, the whole list in one context.

- ``llm_listwise`` -- "Is ChatGPT Good at Search? Investigating Large Language Models as Re-Ranking
  Agents" (Sun et al., 2023): the model writes ``[3] > [1] > ...``; the parser survives malformed
  output (:func:`rankstack.rerank.llm.windows.parse_permutation`).
- ``llm_first`` -- "FIRST: Faster Improved Listwise Reranking with Single Token Decoding" (Reddy et
  al., 2024): one forward pass; the window is ordered by the log-probabilities of every identifier as
  the first generated token (the answer is pre-filled with ``[``). Identifiers are letters ``A..T``
  (one token each; numbers split into digits).
- ``llm_fullrank`` -- either of the two over the whole list in one context (``window=None``). A list
  that does not fit the context is an error naming the tokens needed and the context length (no silent
  fall back to windows: use ``llm_listwise``/``llm_first`` for that).

Windows move back to front (:func:`~rankstack.rerank.llm.windows.sliding_windows`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from rankstack.errors import InputError
from rankstack.llm.base import LLMBackend
from rankstack.registry import Context, register
from rankstack.rerank.base import DocumentSource
from rankstack.rerank.llm.base import LLMPrecision, LLMStage, backend_from, check_positive, order_to_scores
from rankstack.rerank.llm.prompts import identifiers, listwise_prompt
from rankstack.rerank.llm.windows import apply_window, parse_permutation, sliding_windows

__all__ = ["ListwiseReranker", "MODES"]

MODES = ("generate", "first")


class ListwiseReranker(LLMStage):
    """See the module docstring. ``ids``: ``"numbers"`` (RankGPT) or ``"letters"`` (FIRST's default)."""

    def __init__(self, backend: LLMBackend, documents: DocumentSource = None, mode: str = "generate",
                 window: int | None = 20, stride: int = 10, ids: str | None = None, depth: int | None = 20,
                 max_passage_tokens: int | None = 100, max_new_tokens: int | None = None,
                 progress: bool = False) -> None:
        super().__init__(backend, documents, depth, max_passage_tokens, progress)
        if mode not in MODES:
            raise InputError(f"listwise: unknown mode {mode!r}", fix=f"choose one of {', '.join(MODES)}")
        check_positive("window", window, allow_none=True)
        check_positive("stride", stride)
        self.mode, self.window, self.stride = mode, window, stride
        self.ids = ids or ("letters" if mode == "first" else "numbers")
        identifiers(window or 2, self.ids)  # an unknown kind or a window beyond 26 letters fails here
        if mode == "first" and self.ids != "letters":
            raise InputError("FIRST needs single-token identifiers", fix="use ids='letters'")
        if window is not None:
            sliding_windows(max(window + 1, 3), window, stride)  # a stride outside 1..window fails here
        self.check_window(window)
        self.max_new_tokens = max_new_tokens
        self.name = {"first": "llm_first", "generate": "llm_listwise"}[mode] if window else f"llm_fullrank_{mode}"
        self.strategy = self.name[4:]
        self.repairs = {"repeated": 0, "unknown": 0, "missing": 0, "windows": 0}

    def order_window(self, query: str, docs: list[str]) -> list[int]:
        """Window positions best first, by generation (parsed) or by the first token's logits."""
        ids = identifiers(len(docs), self.ids)
        prompt = listwise_prompt(query, docs, ids)
        self.check_prompt(self.backend.count_tokens([prompt])[0], len(docs))
        self.repairs["windows"] += 1
        if self.mode == "first":
            lp = self.backend.next_token_logprobs([prompt], ids)[0]
            return [int(k) for k in np.lexsort((np.arange(len(ids)), -lp))]  # ties: window order
        budget = self.max_new_tokens or 6 * len(docs) + 4  # "12] > [" is ~5 tokens per identifier
        gen = self.backend.generate([prompt], max_new_tokens=budget)[0]
        order, repaired = parse_permutation(prompt.prefix + gen.text, ids)
        for key, v in repaired.items():
            self.repairs[key] += v
        return order

    def rank_query(self, query: str, docs: list[str]) -> np.ndarray:
        ranking = list(range(len(docs)))
        if len(docs) < 2:
            return np.ones(len(docs))
        for start, end in sliding_windows(len(docs), self.window, self.stride):
            order = self.order_window(query, [docs[i] for i in ranking[start:end]])
            ranking = apply_window(ranking, start, end, order)
        return order_to_scores(ranking)


def _common(context, model, cache, threads, batch_size, api_model, timeout, retries, precision):
    return backend_from(model, context, cache, threads, batch_size, api_model, timeout, retries,
                        precision=precision), \
        (context.collection if context else None)


@register("llm_listwise", kind="reranker")
def build_llm_listwise(context: Context | None = None, model: str = "smollm2", window: int = 20, stride: int = 10,
                       ids: Literal["numbers", "letters"] = "numbers", depth: int | None = 20,
                       max_passage_tokens: int | None = 100, max_new_tokens: int | None = None,
                       batch_size: int = 8, threads: int | None = None, cache: bool = True,
                       api_model: str | None = None, timeout: float = 60.0, retries: int = 3,
                       progress: bool = False, precision: LLMPrecision = "auto") -> ListwiseReranker:
    """``bm25 % 20 >> llm_listwise(window=20, stride=10)``: RankGPT sliding windows, generated permutations."""
    check_positive("window", window)  # before the model loads: a bad argument fails at once
    check_positive("stride", stride)
    backend, docs = _common(context, model, cache, threads, batch_size, api_model, timeout, retries, precision)
    return ListwiseReranker(backend, docs, "generate", window, stride, ids, depth, max_passage_tokens,
                            max_new_tokens, progress)


@register("llm_first", kind="reranker")
def build_llm_first(context: Context | None = None, model: str = "smollm2", window: int = 20, stride: int = 10,
                    depth: int | None = 20, max_passage_tokens: int | None = 100, batch_size: int = 8,
                    threads: int | None = None, cache: bool = True, api_model: str | None = None,
                    timeout: float = 60.0, retries: int = 3, progress: bool = False,
                    precision: LLMPrecision = "auto") -> ListwiseReranker:
    """``bm25 % 20 >> llm_first(window=20)``: FIRST, the window ordered by the first token's logits."""
    check_positive("window", window)  # before the model loads: a bad argument fails at once
    check_positive("stride", stride)
    backend, docs = _common(context, model, cache, threads, batch_size, api_model, timeout, retries, precision)
    return ListwiseReranker(backend, docs, "first", window, stride, "letters", depth, max_passage_tokens,
                            None, progress)


@register("llm_fullrank", kind="reranker")
def build_llm_fullrank(context: Context | None = None, model: str = "smollm2",
                       mode: Literal["generate", "first"] = "first", depth: int | None = 20,
                       max_passage_tokens: int | None = 100, max_new_tokens: int | None = None,
                       batch_size: int = 8, threads: int | None = None, cache: bool = True,
                       api_model: str | None = None, timeout: float = 60.0, retries: int = 3,
                       progress: bool = False, precision: LLMPrecision = "auto") -> ListwiseReranker:
    """``bm25 % 20 >> llm_fullrank(mode='first')``: the whole top ``depth`` in one context (or an error)."""
    backend, docs = _common(context, model, cache, threads, batch_size, api_model, timeout, retries, precision)
    if mode == "first" and depth is not None and depth > 26:
        raise InputError(f"llm_fullrank: mode 'first' ranks at most 26 passages (letters), depth is {depth}",
                         fix="use depth <= 26 or mode='generate'")
    stage = ListwiseReranker(backend, docs, mode, None, 1, None, depth, max_passage_tokens, max_new_tokens,
                             progress)
    stage.check_window(depth)
    return stage
