"""A fake LM that reads rankstack's own ranking prompts and answers from a relevance function.

Why: end-to-end tests of every strategy (and of the HTTP backend through the loopback test server)
need a model whose correct answer is known: with ``relevance(query, passage)`` (default: how many
distinct query words the passage contains) the oracle answers yes/no, A/B, identifier logits,
permutations and attention consistently, so a strategy that wires prompts, parsing and aggregation
correctly reproduces the relevance order.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from rankstack.llm.fake import FakeLM, fake_tokens

__all__ = ["oracle_lm", "word_overlap"]

_POINTWISE = re.compile(r"Passage: (.*)\nQuery: (.*)\nDoes the passage", re.S)
_PRP = re.compile(r'Given a query "(.*)", which.*?Passage A: "(.*)"\n\nPassage B: "(.*)"\n\nOutput', re.S)
_LIST_QUERY = re.compile(r"Search Query: (.*)\.\nRank the")
_LIST_ITEM = re.compile(r"^\[([A-Za-z]|\d+)\] (.*)$", re.M)


def word_overlap(query: str, passage: str) -> float:
    words = {w.lower() for w in fake_tokens(query) if w.isalnum()}
    return float(sum(w in words for w in {t.lower() for t in fake_tokens(passage) if t.isalnum()}))


def oracle_lm(relevance: Callable[[str, str], float] = word_overlap, scale: float = 1.0, **kwargs) -> FakeLM:
    """A :class:`FakeLM` answering rankstack's prompts by ``relevance`` (``scale`` sharpens the logits)."""

    def listing(text: str) -> tuple[str, list[tuple[str, str]]]:
        q = _LIST_QUERY.search(text)
        return (q.group(1) if q else ""), _LIST_ITEM.findall(text.split("Search Query:")[0])

    def logprobs(text: str, cands: list[str]) -> list[float]:
        """By candidate identity, so that any vocabulary (e.g. a test server's) can be asked."""
        m = _POINTWISE.search(text)
        if m:
            r = scale * relevance(m.group(2), m.group(1))
            return [r if c.strip() == "Yes" else 0.0 if c.strip() == "No" else -100.0 for c in cands]
        m = _PRP.search(text)
        if m:
            rel = {"A": relevance(m.group(1), m.group(2)), "B": relevance(m.group(1), m.group(3))}
            return [scale * rel[c.strip()] if c.strip() in rel else -100.0 for c in cands]
        query, items = listing(text)
        rel = {ident: relevance(query, body) for ident, body in items}
        return [scale * rel[c.strip()] if c.strip() in rel else -100.0 for c in cands]

    def respond(text: str) -> str:
        query, items = listing(text)
        ranked = sorted(items, key=lambda it: -relevance(query, it[1]))  # stable: ties keep shown order
        return " > ".join(f"[{ident}]" for ident, _ in ranked)[1:]  # the prompt pre-fills "["

    def attention(segments, source):
        return [relevance(segments[source], s) if k != source else 0.0 for k, s in enumerate(segments)]

    return FakeLM(logprobs=logprobs, respond=respond, attention=attention, **kwargs)
