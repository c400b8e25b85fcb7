"""Clean and vet a generated query: strip the model's chatter, reject empty, garbage and copied text.

Why: a 135M-parameter model asked for a query often answers "Query: ...", wraps it in quotes, runs
on into a second line, or -- with a bare prompt -- copies the passage (measured: see
benchmarks/synth.md). Training a ranker on a copied passage teaches it lexical matching of long spans,
not relevance, so such outputs are rejected and counted (InPars, Bonifacio et al. 2022, and
Promptagator, Dai et al. 2022, both filter generated queries; these checks are the cheap syntactic
part, the score-based filters are in :mod:`rankstack.synth.filters`). Hand-written because the rules
are specific to what small LMs emit.
"""

from __future__ import annotations

import difflib
import re
import unicodedata

__all__ = ["clean_query", "rejection_reason", "words"]

_LABEL = re.compile(r"^\s*(?:\d+[.)]\s*|[-*•]\s*)?(?:(?:search\s+)?(?:query|question|relevant query|q)\s*\d*\s*[:\-]\s*)",
                    re.IGNORECASE)
# "The user wants to know the answer to the question: What is X?" -> the part after the colon
_PREAMBLE = re.compile(r"^[^:?]{0,160}\b(?:question|query|search|type|ask|asks|wants|answer)\b[^:?]{0,100}:\s*(.*)$",
                       re.IGNORECASE)
# "The user wants to know how to ..." -> "how to ..."
_WANTS = re.compile(r"^(?:the\s+)?(?:user|searcher|reader)\s+(?:wants|would like|needs)\s+to\s+(?:know|find out|learn)"
                    r"(?:\s+about)?\s+", re.IGNORECASE)
_WORD = re.compile(r"\w+", re.UNICODE)
_QUOTES = "\"'“”‘’`«»"


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def clean_query(raw: str) -> str:
    """The first non-empty line of ``raw`` without a leading label ("Query:", "1."), a chatty preamble
    ("The user wants to know the answer to the question: ..."; nothing is left when the preamble is all
    there is), wrapping quotes, or anything after the first question mark."""
    line = next((ln for ln in raw.splitlines() if ln.strip()), "")
    line = _LABEL.sub("", line, count=1).strip()
    m = _PREAMBLE.match(line)
    if m:
        line = m.group(1).strip()
    if len(line) >= 2 and line[0] in _QUOTES and line[-1] in _QUOTES:
        line = line[1:-1].strip()
    line = _WANTS.sub("", line.lstrip(_QUOTES + " "), count=1)
    if "?" in line:
        line = line[: line.index("?") + 1]
    line = line.strip(_QUOTES + " ")
    return " ".join(line.split())


def _garbage(text: str) -> str | None:
    if "\ufffd" in text or any(unicodedata.category(c) in ("Cc", "Co", "Cs") for c in text):
        return "non-text characters"
    visible = [c for c in text if not c.isspace()]
    letters = sum(c.isalpha() for c in visible)
    if letters < 0.5 * len(visible):
        return "mostly non-letters"
    ws = words(text)
    run = 1
    for a, b in zip(ws, ws[1:]):
        run = run + 1 if a == b else 1
        if run >= 3:
            return "repeated word"
    if len(ws) >= 6 and len(set(ws)) <= len(ws) // 3:
        return "repetitive"
    return None


def rejection_reason(query: str, passage: str, *, min_words: int = 2, max_words: int = 32,
                     copy_words: int = 12, copy_fraction: float = 0.8) -> str | None:
    """Why ``query`` is unusable for ``passage`` (None when it is fine).

    Reasons: ``empty``, ``too short`` (< ``min_words`` words), ``too long`` (> ``max_words``), a
    garbage reason (non-text characters, mostly non-letters, repeated words) or ``copy of the passage``
    (``copy_fraction`` of a query of 6+ words is one verbatim run of the passage, or a run of
    ``copy_words`` words is: a short keyword phrase from the passage is a legitimate query, and so is a
    question wrapped around a title-length phrase -- "What is the experimental investigation of the
    aerodynamics of a wing in a slipstream?" -- but a sentence lifted from the passage is not).
    """
    if not query or not query.strip():
        return "empty"
    ws = words(query)
    if len(ws) < min_words:
        return "too short"
    if len(ws) > max_words:
        return "too long"
    bad = _garbage(query)
    if bad:
        return bad
    pw = words(passage)
    if pw:
        match = difflib.SequenceMatcher(None, ws, pw, autojunk=False).find_longest_match(0, len(ws), 0, len(pw))
        if match.size >= copy_words or (len(ws) >= 6 and match.size >= copy_fraction * len(ws)):
            return "copy of the passage"
    return None
