"""Seeded query perturbations: character typos, casing, word order, stop words, synonyms, paraphrases.

Why: a ranker that wins on clean queries can fall apart on the noise real users type. The taxonomy
(character-, word- and sentence-level edits) follows Wu et al., "Are Neural Ranking Models Robust?"
(ACM TOIS 2022). Every perturbation is a pure function of (text, generator): the same seed, the same
query id and the same perturbation name give the same output on every machine
(:func:`perturb_queries` derives one generator per query from those three).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rankstack.errors import InputError
from rankstack.types import Queries

__all__ = ["PERTURBATIONS", "Perturbation", "perturb_queries", "query_rng", "STOPWORDS", "KEYBOARD",
           "typo_swap", "typo_drop", "typo_insert", "typo_keyboard", "casing", "word_order",
           "drop_stopwords", "synonym_substitution", "get_perturbation"]

# A standard English stop list (the NLTK/Snowball words that survive tokenisation).
STOPWORDS = frozenset("""a about above after again against all am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just me more most my myself no
nor not now of off on once only or other our ours ourselves out over own same she should so some such than that
the their theirs them themselves then there these they this those through to too under until up very was we were
what when where which while who whom why will with would you your yours yourself yourselves""".split())

# QWERTY neighbours (same row and the rows above/below), for keyboard typos.
_ROWS = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]
KEYBOARD: dict[str, str] = {}
for _r, _row in enumerate(_ROWS):
    for _c, _ch in enumerate(_row):
        near = []
        for dr in (-1, 0, 1):
            rr = _r + dr
            if 0 <= rr < len(_ROWS):
                for dc in (-1, 0, 1):
                    cc = _c + dc
                    if (dr or dc) and 0 <= cc < len(_ROWS[rr]):
                        near.append(_ROWS[rr][cc])
        KEYBOARD[_ch] = "".join(near)

_WORD = re.compile(r"\S+")
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def query_rng(seed: int, name: str, qid: str) -> np.random.Generator:
    """One generator per (seed, perturbation, query): results do not depend on query order or subsets."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode()), zlib.crc32(qid.encode())])


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _alpha_positions(word: str) -> list[int]:
    return [i for i, ch in enumerate(word) if ch.isalpha()]


def _pick_words(words: list[str], rng: np.random.Generator, n: int, ok: Callable[[str], bool]) -> list[int]:
    """Up to ``n`` distinct eligible word positions, drawn without replacement (sorted)."""
    eligible = [i for i, w in enumerate(words) if ok(w)]
    if not eligible:
        return []
    take = min(n, len(eligible))
    return sorted(rng.choice(eligible, size=take, replace=False).tolist())


def _edit_words(text: str, rng: np.random.Generator, n: int, min_letters: int,
                edit: Callable[[str, np.random.Generator], str]) -> str:
    words = _words(text)
    for i in _pick_words(words, rng, n, lambda w: len(_alpha_positions(w)) >= min_letters):
        words[i] = edit(words[i], rng)
    return " ".join(words)


def typo_swap(text: str, rng: np.random.Generator, n: int = 1) -> str:
    """Swap two adjacent, different letters inside ``n`` words (first and last letter kept)."""

    def edit(w: str, r: np.random.Generator) -> str:
        pos = _alpha_positions(w)
        pairs = [(a, b) for a, b in zip(pos[1:-2], pos[2:-1]) if b == a + 1 and w[a] != w[b]]
        if not pairs:
            pairs = [(a, b) for a, b in zip(pos, pos[1:]) if b == a + 1 and w[a] != w[b]]
        if not pairs:
            return w
        a, b = pairs[int(r.integers(len(pairs)))]
        return w[:a] + w[b] + w[a] + w[b + 1:]

    return _edit_words(text, rng, n, 4, edit)


def typo_drop(text: str, rng: np.random.Generator, n: int = 1) -> str:
    """Delete one inner letter of ``n`` words."""

    def edit(w: str, r: np.random.Generator) -> str:
        pos = _alpha_positions(w)
        inner = pos[1:-1] or pos
        i = inner[int(r.integers(len(inner)))]
        return w[:i] + w[i + 1:]

    return _edit_words(text, rng, n, 3, edit)


def typo_insert(text: str, rng: np.random.Generator, n: int = 1) -> str:
    """Insert one random letter inside ``n`` words."""

    def edit(w: str, r: np.random.Generator) -> str:
        i = int(r.integers(1, len(w)))
        ch = _LETTERS[int(r.integers(26))]
        return w[:i] + (ch.upper() if w[i - 1].isupper() else ch) + w[i:]

    return _edit_words(text, rng, n, 3, edit)


def typo_keyboard(text: str, rng: np.random.Generator, n: int = 1) -> str:
    """Replace one letter of ``n`` words by a QWERTY neighbour (a fat-finger typo)."""

    def edit(w: str, r: np.random.Generator) -> str:
        pos = [i for i in _alpha_positions(w) if w[i].lower() in KEYBOARD]
        i = pos[int(r.integers(len(pos)))]
        near = KEYBOARD[w[i].lower()]
        ch = near[int(r.integers(len(near)))]
        return w[:i] + (ch.upper() if w[i].isupper() else ch) + w[i + 1:]

    return _edit_words(text, rng, n, 3, edit)


def casing(text: str, rng: np.random.Generator) -> str:
    """Re-case every word at random: UPPER, lower or Title (the letters stay the same)."""
    out = []
    for w in _words(text):
        k = int(rng.integers(3))
        out.append(w.upper() if k == 0 else w.lower() if k == 1 else w[:1].upper() + w[1:].lower())
    return " ".join(out)


def word_order(text: str, rng: np.random.Generator) -> str:
    """Shuffle the words (a different order whenever the query has two different words)."""
    words = _words(text)
    if len(set(words)) < 2:
        return " ".join(words)
    for _ in range(20):
        perm = [words[i] for i in rng.permutation(len(words))]
        if perm != words:
            return " ".join(perm)
    return " ".join(words[1:] + words[:1])  # pragma: no cover - a rotation always differs here


def _bare(word: str) -> str:
    return re.sub(r"[^\w]", "", word.lower())


def drop_stopwords(text: str, rng: np.random.Generator | None = None) -> str:
    """Remove stop words (keyword-style queries); a query made only of stop words is kept."""
    words = _words(text)
    kept = [w for w in words if _bare(w) not in STOPWORDS]
    return " ".join(kept or words)


def synonym_substitution(text: str, rng: np.random.Generator, synonyms: Any, n: int = 1) -> str:
    """Replace ``n`` content words by a random candidate of ``synonyms.candidates(word)``."""
    words = _words(text)

    def ok(w: str) -> bool:
        b = _bare(w)
        return len(b) >= 3 and b not in STOPWORDS and bool(synonyms.candidates(b))

    for i in _pick_words(words, rng, n, ok):
        cands = synonyms.candidates(_bare(words[i]))
        words[i] = cands[int(rng.integers(len(cands)))]
    return " ".join(words)


@dataclass(frozen=True)
class Perturbation:
    """A named query perturbation; ``fn(text, rng)`` -> text."""

    name: str
    fn: Callable[[str, np.random.Generator], str]
    level: str  # "char", "word" or "sentence" (Wu et al.'s taxonomy)


PERTURBATIONS: dict[str, str] = {
    "typo_swap": "char", "typo_drop": "char", "typo_insert": "char", "typo_keyboard": "char",
    "casing": "char", "word_order": "word", "stopwords": "word", "synonym": "word", "paraphrase": "sentence",
}


def get_perturbation(name: str, synonyms: Any = None, paraphraser: Any = None, n: int = 1) -> Perturbation:
    """The perturbation called ``name`` (see :data:`PERTURBATIONS`)."""
    fns: Mapping[str, Callable[[str, np.random.Generator], str]] = {
        "typo_swap": lambda t, r: typo_swap(t, r, n), "typo_drop": lambda t, r: typo_drop(t, r, n),
        "typo_insert": lambda t, r: typo_insert(t, r, n), "typo_keyboard": lambda t, r: typo_keyboard(t, r, n),
        "casing": casing, "word_order": word_order, "stopwords": drop_stopwords,
    }
    if name in fns:
        return Perturbation(name, fns[name], PERTURBATIONS[name])
    if name == "synonym":
        if synonyms is None:
            raise InputError("perturbation 'synonym' needs a synonym source")
        return Perturbation(name, lambda t, r: synonym_substitution(t, r, synonyms, n), "word")
    if name == "paraphrase":
        if paraphraser is None:
            raise InputError("perturbation 'paraphrase' needs an LLM", fix="set llm = \"...\" in the config")
        return Perturbation(name, lambda t, r: paraphraser(t, r), "sentence")
    from rankstack.errors import UnknownComponentError

    raise UnknownComponentError(name, "perturbation", list(PERTURBATIONS))


def perturb_queries(queries: Queries, perturbation: Perturbation, seed: int = 0) -> Queries:
    """Apply ``perturbation`` to every query; one generator per query (see :func:`query_rng`)."""
    out = {}
    for qid, text in queries:
        new = perturbation.fn(text, query_rng(seed, perturbation.name, qid)).strip()
        out[qid] = new or text
    return Queries.from_dict(out)


def changed_share(before: Sequence[str], after: Sequence[str]) -> float:
    """Share of queries whose text changed (a perturbation that rarely applies says so in the table)."""
    if not before:
        return 0.0
    return float(np.mean([a != b for a, b in zip(before, after)]))
