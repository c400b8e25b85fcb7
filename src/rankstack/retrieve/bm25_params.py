"""Parameters of a BM25 index and their checks: which values exist, and which decide the term space.

Why a module of its own: the retriever, the expansion stages (rm3, bo1) that must share its analyzer,
and the registry's argument checks all read these names; keeping them apart keeps bm25.py one concept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rankstack.errors import InputError
from rankstack.types import WeightedQueries

__all__ = ["METHODS", "FIELDS", "TOKEN_PATTERN", "TOKENIZERS", "NORMS", "LUCENE_PORTER", "ANALYZER_KEYS",
           "LEGACY_DEFAULTS", "check_analyzer", "check_params", "check_text_params"]

METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")
FIELDS = ("title", "text")
TOKEN_PATTERN = r"(?u)\b\w\w+\b"  # bm25s's default: words of 2+ characters
TOKENIZERS = ("regex", "lucene")  # bm25s's regex splitter | Lucene's StandardTokenizer (UAX #29)
NORMS = ("exact", "lucene")  # document lengths as counted | Lucene's one-byte quantisation
LUCENE_PORTER = "lucene-porter"  # Lucene's PorterStemFilter (Porter's C version), not a Snowball name
# what decides the term space; indexes saved before "tokenizer" existed used the regex one
ANALYZER_KEYS = ("tokenizer", "stopwords", "stemmer", "token_pattern", "fields")
LEGACY_DEFAULTS = {"tokenizer": "regex", "norms": "exact"}


def check_params(k1: float, b: float, method: str, fields: Sequence[str]) -> None:
    if not (isinstance(k1, (int, float)) and 0 <= k1 <= 100):
        raise InputError(f"bm25: k1 must be a number in [0, 100], got {k1!r}")
    if not (isinstance(b, (int, float)) and 0 <= b <= 1):
        raise InputError(f"bm25: b must be a number in [0, 1], got {b!r}")
    if method not in METHODS:
        raise InputError(f"bm25: unknown method {method!r}", fix=f"choose one of {', '.join(METHODS)}")
    bad = [f for f in fields if f not in FIELDS]
    if bad or not fields:
        raise InputError(f"bm25: fields must be a non-empty subset of {FIELDS}, got {list(fields)}")


def check_text_params(stopwords: Any, stemmer: Any, token_pattern: Any, tokenizer: Any = "regex",
                       norms: Any = "exact", method: str = "lucene") -> None:
    import re

    if tokenizer not in TOKENIZERS:
        raise InputError(f"bm25: tokenizer must be one of {', '.join(TOKENIZERS)}, got {tokenizer!r}")
    if norms not in NORMS:
        raise InputError(f"bm25: norms must be one of {', '.join(NORMS)}, got {norms!r}")
    if norms == "lucene" and method != "lucene":
        raise InputError(f"bm25: norms='lucene' is Lucene's BM25 and needs method='lucene', got {method!r}",
                         fix="use method='lucene' or norms='exact'")
    if tokenizer == "lucene" and isinstance(stopwords, str) and stopwords not in ("lucene", "en", "english"):
        raise InputError(f"bm25: with tokenizer='lucene', stopwords must be 'lucene', 'en', None or a list "
                         f"of words, got {stopwords!r}")
    if not isinstance(token_pattern, str) or not token_pattern:
        raise InputError(f"bm25: token_pattern must be a non-empty regular expression, got {token_pattern!r}",
                         fix=f"omit it for the default {TOKEN_PATTERN!r}")
    try:
        compiled = re.compile(token_pattern)
    except re.error as exc:
        raise InputError(f"bm25: token_pattern {token_pattern!r} is not a regular expression ({exc})") from None
    if compiled.match("") is not None:
        raise InputError(f"bm25: token_pattern {token_pattern!r} matches the empty string, so every "
                         "token would be empty", fix=f"use a pattern such as {TOKEN_PATTERN!r}")
    if tokenizer == "lucene" and token_pattern != TOKEN_PATTERN:
        raise InputError("bm25: token_pattern applies to tokenizer='regex' only; tokenizer='lucene' splits "
                         "words as Lucene's StandardTokenizer", fix="add tokenizer='regex' or drop token_pattern")
    if stemmer is not None and not isinstance(stemmer, str):
        raise InputError(f"bm25: stemmer must be a Snowball algorithm name, {LUCENE_PORTER!r} or None, got "
                         f"{stemmer!r}", fix=f"e.g. stemmer={LUCENE_PORTER!r}, stemmer='english' or stemmer=None")
    if stopwords is not None and not isinstance(stopwords, str) and not (
            isinstance(stopwords, (list, tuple)) and all(isinstance(w, str) for w in stopwords)):
        raise InputError(f"bm25: stopwords must be 'lucene', 'en', None or a list of words, got {stopwords!r}")


def check_analyzer(queries: WeightedQueries, analyzer: dict[str, Any]) -> None:
    """Refuse weighted terms made by another tokenisation: they would silently match nothing."""
    if not queries.analyzer:
        return
    diff = [key for key in ANALYZER_KEYS if key in queries.analyzer and queries.analyzer[key] != analyzer[key]]
    if diff:
        shown = ", ".join(f"{key}={queries.analyzer[key]!r} vs {analyzer[key]!r}" for key in diff)
        raise InputError(f"bm25: the expanded queries were tokenised differently from this index ({shown})",
                         fix="give the expansion stage (rm3, bo1) the same " + "/".join(diff) + " as bm25")
