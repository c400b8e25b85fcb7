"""Lucene's English analysis chain as Anserini/Pyserini configure it for BEIR, in Python.

Why: Pyserini's BM25 figures come from Anserini's ``DefaultEnglishAnalyzer`` (Lucene
``StandardTokenizer`` -> ``EnglishPossessiveFilter`` -> ``LowerCaseFilter`` -> ``StopFilter`` with
``EnglishAnalyzer.ENGLISH_STOP_WORDS_SET`` -> ``PorterStemFilter``); bm25s's regex tokenizer differs
(drops one-character tokens, splits "1.5" and "U.S.A", another stopword list, Snowball English). The
BM25 formula is the same, so matching the analyzer is what matching Pyserini takes.

What comes from libraries: the word boundaries are Unicode's (UAX #29 "Unicode Text Segmentation",
the rules Lucene's StandardTokenizer implements), computed by the ``regex`` module's ``(?w)`` mode;
stemming is PyStemmer's ``porter`` (Porter, "An algorithm for suffix stripping", 1980).
Hand-written because no library does it: which segments Lucene keeps as tokens, the possessive
filter, Java's per-character lower-casing, the 255-character token limit, and the three places where
Lucene's PorterStemmer (a port of Martin Porter's C version) departs from the published algorithm
that Snowball implements -- words of one or two letters are not stemmed, and step 2 maps "-bli" to
"-ble" and "-logi" to "-log". Checked token for token against Anserini 1.7.1's analyzer on every
document and query of the four shared BEIR collections (benchmarks/bm25.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from rankstack.errors import RankstackError

__all__ = ["LUCENE_STOPWORDS", "LucenePorterStemmer", "lucene_tokenize", "make_lucene_analyzer"]

# org.apache.lucene.analysis.en.EnglishAnalyzer.ENGLISH_STOP_WORDS_SET (33 words)
LUCENE_STOPWORDS: frozenset[str] = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there "
    "these they this to was will with".split())
MAX_TOKEN_LENGTH = 255  # StandardAnalyzer.DEFAULT_MAX_TOKEN_LENGTH: longer tokens are split
# Java's Character.toLowerCase maps code point by code point; Python's str.lower() differs on these two
_JAVA_LOWER = str.maketrans({"\u0130": "i", "\u03a3": "\u03c3",
                             # Lucene's UAX #29 tables predate the Unicode version regex follows: they
                             # break at a cedilla inside a word (seen in mis-decoded Thai text)
                             "\u00b8": " "})
_POSSESSIVE_MARKS = ("'", "\u2019", "\uff07")


@lru_cache(maxsize=1)
def _patterns():
    try:
        import regex
    except ImportError:  # a dependency of rankstack itself (and of transformers): a broken install
        raise RankstackError("bm25's Lucene analyzer needs the 'regex' package, which is missing: "
                             "pip install regex (or tokenizer='regex')") from None
    # a word segment (UAX #29 boundaries on both sides) that starts with a letter, digit, ideograph or
    # pictograph: Lucene's ALPHANUM/NUM/IDEOGRAPHIC/.../EMOJI token types; punctuation and spaces are
    # segments too, and are skipped
    word = regex.compile(r"(?ws)\b(?=[\p{Alphabetic}\p{Nd}\p{Extended_Pictographic}_]).+?\b")
    keep = regex.compile(r"[\p{Alphabetic}\p{Nd}\p{Extended_Pictographic}]")
    return word, keep


def lucene_tokenize(text: str) -> list[str]:
    """StandardTokenizer + EnglishPossessiveFilter + LowerCaseFilter: lower-case word tokens."""
    word, keep = _patterns()
    tokens = []
    for tok in word.findall(text.translate(_JAVA_LOWER).lower() if not text.isascii() else text.lower()):
        if tok[0] == "_" and not keep.search(tok):  # "___" alone is no token
            continue
        if len(tok) > MAX_TOKEN_LENGTH:
            tokens += [tok[i:i + MAX_TOKEN_LENGTH] for i in range(0, len(tok), MAX_TOKEN_LENGTH)]
            continue
        if len(tok) >= 2 and tok[-1] == "s" and tok[-2] in _POSSESSIVE_MARKS:
            tok = tok[:-2]
            if not tok:
                continue
        tokens.append(tok)
    return tokens


def _measure(stem: str) -> int:
    """Porter's m: the number of vowel-consonant sequences in ``stem`` (y after a consonant is a vowel)."""
    m, prev_vowel = 0, False
    for i, ch in enumerate(stem):
        vowel = ch in "aeiou" or (ch == "y" and i > 0 and not prev_vowel)
        if prev_vowel and not vowel:
            m += 1
        prev_vowel = vowel
    return m


class LucenePorterStemmer:
    """Lucene's PorterStemFilter: PyStemmer's Porter plus the C version's departures (see module doc)."""

    def __init__(self) -> None:
        import Stemmer

        self._porter = Stemmer.Stemmer("porter")
        self._cache: dict[str, str] = {}

    def stem(self, word: str) -> str:
        out = self._cache.get(word)
        if out is None:
            out = self._cache[word] = self._stem(word)
        return out

    def _stem(self, word: str) -> str:
        if len(word) <= 2:
            return word
        out = self._porter.stemWord(word)
        # Snowball leaves step 1's "-bli"/"-logi" alone (no later step touches those endings); Lucene
        # rewrites them in step 2 when the stem before the suffix has m > 0, then runs steps 3-5
        if out.endswith("bli") and _measure(out[:-3]) > 0:
            out = self._porter.stemWord(out[:-1] + "e")
        elif out.endswith("logi") and _measure(out[:-4]) > 0:
            out = out[:-1]
        return out

    def stemWords(self, words: Sequence[str]) -> list[str]:  # noqa: N802 - PyStemmer's interface
        return [self.stem(w) for w in words]


def make_lucene_analyzer(stopwords: frozenset[str] | set[str] | None,
                         stem: Callable[[str], str] | None) -> Callable[[str], list[str]]:
    """text -> terms: Lucene tokens, stopwords removed (before stemming, as Lucene does), stemmed."""
    stop = stopwords or frozenset()

    def analyze(text: str) -> list[str]:
        toks = [t for t in lucene_tokenize(text) if t not in stop]
        return [stem(t) for t in toks] if stem is not None else toks

    return analyze


def analyze_all(texts: Sequence[str], analyze: Callable[[str], list[str]], progress: bool = False) -> Any:
    """Analyze many texts (a progress bar for large corpora)."""
    if not progress:
        return [analyze(t) for t in texts]
    from tqdm.auto import tqdm

    return [analyze(t) for t in tqdm(texts, unit="doc", desc="bm25 analyze (lucene)")]
