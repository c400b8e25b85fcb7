"""Highlighted snippets: the part of a document where the query's terms are densest, HTML-escaped,
with matching words wrapped in ``<mark>``.

Why stems: BM25 matches "purring" to "purr" through its Snowball stemmer; highlighting with the same
stemmer (PyStemmer, the English algorithm BM25 uses by default) marks the words that made the
document match. Why escape first and mark per word: the snippet goes straight into HTML, so no text of
the document may ever become markup.
"""

from __future__ import annotations

import functools
import html
import re
from collections import Counter

__all__ = ["snippet", "query_terms"]

_WORD = re.compile(r"\w+", re.UNICODE)
MAX_CHARS = 20000  # longer documents: the snippet comes from their beginning
_STOP = frozenset("a an and are as at be by for from how in is it of on or that the this to was what when "
                  "where which who why with do does".split())


@functools.lru_cache(maxsize=1)
def _stemmer():
    try:
        import Stemmer

        return Stemmer.Stemmer("english")
    except (ImportError, KeyError):  # no PyStemmer: exact (lower-case) matches only
        return None


def _stem(words: list[str]) -> list[str]:
    stemmer = _stemmer()
    lowered = [w.lower() for w in words]
    return stemmer.stemWords(lowered) if stemmer is not None else lowered


def query_terms(query: str) -> set[str]:
    """Stems of the query's words, without stop words (they would mark half of every text)."""
    words = [w for w in _WORD.findall(query) if w.lower() not in _STOP]
    return set(_stem(words))


def snippet(text: str, terms: set[str], width: int = 32) -> str:
    """About ``width`` words of ``text`` around its densest run of query terms, escaped and marked."""
    text = text[:MAX_CHARS]
    spans = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    if not spans:
        return html.escape(text[:300])
    stems = _stem([text[s:e] for s, e in spans])
    hit = [st in terms for st in stems]
    best = 0
    if len(spans) > width:  # sliding window: the most distinct query terms in ``width`` words
        counts = Counter(stems[i] for i in range(width) if hit[i])
        best_score = len(counts)
        for start in range(1, len(spans) - width + 1):
            gone, new = start - 1, start + width - 1
            if hit[gone]:
                counts[stems[gone]] -= 1
                if not counts[stems[gone]]:
                    del counts[stems[gone]]
            if hit[new]:
                counts[stems[new]] += 1
            if len(counts) > best_score:
                best, best_score = start, len(counts)
    first, last = best, min(len(spans), best + width) - 1
    out = ["…" if first > 0 else ""]
    pos = spans[first][0]
    for i in range(first, last + 1):
        s, e = spans[i]
        out.append(html.escape(text[pos:s]))
        word = html.escape(text[s:e])
        out.append(f"<mark>{word}</mark>" if hit[i] else word)
        pos = e
    end = spans[last][1]
    tail = text[end:end + 1] if end < len(text) and not text[end].isspace() else ""
    out.append(html.escape(tail))
    if last < len(spans) - 1:
        out.append("…")
    return "".join(out)
