"""Certified top-K robustness by randomized smoothing over word substitutions (CertDR).

Wu et al., "Certified Robustness to Word Substitution Ranking Attack for Neural Ranking Models"
(CIKM 2022): rank by a *smoothed* score ``g(q, d) = E_{d' ~ pi(d)} f(q, d')``, the expectation of a
bounded relevance score ``f`` in [0, 1] over randomly substituted copies of the document, and certify
that a document in the top K stays there whatever an attacker does with at most R word substitutions.

The construction here, stated so a test can check it exactly:

* ``pi(d)`` resamples every word position independently: the word is kept with probability
  ``1 - rate`` and otherwise replaced by a uniform draw from its replacement set -- its embedding
  neighbours (``mode="synonym"``, CertDR's choice) or a single ``[MASK]`` token (``mode="mask"``,
  the word-independent ablation of Levine & Feizi / RanMASK, which certifies against *any* word).
* If ``d~`` differs from ``d`` in positions C, a product of per-position maximal couplings agrees with
  probability ``prod_{i in C} overlap_i``, ``overlap_i = sum_x min(P(x | w_i), P(x | w~_i))``. Hence
  the total variation distance is at most ``delta = 1 - prod overlap_i`` and, ``f`` being in [0, 1],
  ``|g(d~) - g(d)| <= delta``. The attacker picks the R positions and substitutes with the smallest
  overlaps: ``delta_R(d) = 1 - (product of the R smallest per-position worst-case overlaps)``.
  In synonym mode the threat model is CertDR's: substitutes come from the same neighbour sets.
* A top-K document i is certified at radius R when even the worst case -- every document attacked
  with R substitutions, i pushed down and all others pushed up -- leaves fewer than K others at or above
  it: ``#{j != i : g_j + eps_j + delta_R(j) >= g_i - eps_i - delta_R(i)} < K``; ``eps`` is the
  half-width of the Monte-Carlo estimate, valid for all of the query's documents at once (0 for exact
  expectations). Its certified radius is the largest such R.

Two cost/tightness choices, both keeping the certificate valid (see :class:`Smoothing`):

* ``drop_masked`` (mask mode): the scorer sees ``drop_masks(d')``, the smoothed document with its
  ``[MASK]`` tokens removed, instead of ``d'``. That is still a fixed bounded function of the smoothed
  document, so ``g(d) = E_{d' ~ pi(d)} f(drop_masks(d'))`` is an expectation over the same ``pi(d)`` and
  the coupling bound ``|g(d~) - g(d)| <= delta_R`` above is unchanged (it holds for *any* function of
  ``d'`` in [0, 1]). This is the ablation view of Levine & Feizi ("Robustness Certificates for Sparse
  Adversarial Attacks by Randomized Ablation", AAAI 2020) and RanMASK (Zeng et al., ACL Findings 2023):
  at rate 0.9 the scored text is ~10% of the words, ~10x cheaper per sample. An all-masked sample is
  scored as an empty document text (a cross-encoder tokenises it as ``[CLS] query [SEP] [SEP]``).
* ``eps`` holds for all documents of a query *simultaneously* (union bound, ``alpha / m`` each) and is
  Hoeffding's, Maurer & Pontil's empirical-Bernstein or the smaller of both (``bound="best"``);
  :mod:`rankstack.robust.bounds` states them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rankstack.errors import InputError
from rankstack.robust.bounds import BOUNDS, half_widths, hoeffding_half_width

__all__ = ["Smoothing", "word_distribution", "overlap", "position_margin", "tv_bound", "sample_documents",
           "exact_smoothed_score", "smoothed_scores", "certified_radii", "certified_share", "MASK", "drop_masks",
           "scored_text"]

MASK = "[MASK]"


@dataclass(frozen=True)
class Smoothing:
    """Per-position resampling: keep with ``1 - rate``, else a uniform replacement (see module doc).

    ``alpha``: the Monte-Carlo intervals of one query's documents hold together with probability
    >= 1 - alpha. ``bound``: "hoeffding", "bernstein" (empirical Bernstein) or "best" (per document
    the smaller of both at alpha / 2 each). ``drop_masked`` (mask mode only): score the smoothed document
    without its [MASK] tokens (valid, and cheaper: module doc).
    """

    rate: float = 0.5
    mode: str = "mask"  # "mask" or "synonym"
    samples: int = 16
    alpha: float = 0.05  # simultaneous confidence level of the Monte-Carlo estimates of one query
    bound: str = "best"  # "hoeffding", "bernstein" or "best"
    drop_masked: bool = True  # mask mode: the scorer never sees [MASK] tokens

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise InputError(f"smoothing rate must be in [0, 1], got {self.rate!r}")
        if self.mode not in ("mask", "synonym"):
            raise InputError(f"smoothing mode must be 'mask' or 'synonym', got {self.mode!r}")
        if self.samples < 1:
            raise InputError(f"smoothing samples must be >= 1, got {self.samples!r}")
        if not 0.0 < self.alpha < 1.0:
            raise InputError(f"smoothing alpha must be in (0, 1), got {self.alpha!r}")
        if self.bound not in BOUNDS:
            raise InputError(f"smoothing bound must be 'hoeffding', 'bernstein' or 'best', got {self.bound!r}",
                             fix="'best' takes per document the smaller of the two")

    def hoeffding(self, documents: int = 1) -> float:
        """Hoeffding half-width when ``documents`` intervals must hold together (union bound)."""
        return hoeffding_half_width(self.samples, self.alpha / max(1, documents))

    def describe(self) -> dict:
        """What a report must say about the certificate's smoothing and confidence."""
        return {"rate": self.rate, "mode": self.mode, "samples": self.samples, "alpha": self.alpha,
                "bound": self.bound, "simultaneous": "union bound over each query's documents",
                "drop_masked": bool(self.drop_masked and self.mode == "mask")}


def _replacements(word: str, smoothing: Smoothing, synonyms) -> list[str]:
    if smoothing.mode == "mask":
        return [MASK]
    return [c for c in synonyms.candidates(word) if c != word] if synonyms is not None else []


def word_distribution(word: str, smoothing: Smoothing, synonyms=None) -> dict[str, float]:
    """``P(. | word)`` of one position under the smoothing distribution."""
    reps = _replacements(word, smoothing, synonyms)
    if not reps:
        return {word: 1.0}
    p = {word: 1.0 - smoothing.rate}
    for r in reps:
        p[r] = p.get(r, 0.0) + smoothing.rate / len(reps)
    return p


def overlap(p: dict[str, float], q: dict[str, float]) -> float:
    """``sum_x min(p(x), q(x))``: the probability a maximal coupling of p and q agrees."""
    return float(sum(min(v, q.get(x, 0.0)) for x, v in p.items()))


def _substitutes(word: str, smoothing: Smoothing, synonyms) -> list[str]:
    """What the attacker may put at this position (the threat model)."""
    if synonyms is None:
        return []
    return [c for c in synonyms.candidates(word) if c != word]


def position_margin(word: str, smoothing: Smoothing, synonyms=None) -> float:
    """Worst-case overlap when this position is substituted (1.0 if it cannot be).

    Mask mode certifies against *any* replacement word: the overlap is ``rate`` (the [MASK] mass), or
    0 when ``rate`` is 0.
    """
    if smoothing.mode == "mask":
        return smoothing.rate
    subs = _substitutes(word, smoothing, synonyms)
    if not subs:
        return 1.0
    p = word_distribution(word, smoothing, synonyms)
    return min(overlap(p, word_distribution(s, smoothing, synonyms)) for s in subs)


def tv_bound(words: Sequence[str], radius: int, smoothing: Smoothing, synonyms=None) -> float:
    """``delta_R``: how far R substitutions can move the smoothed score of a document of ``words``."""
    if radius <= 0 or not words:
        return 0.0
    margins = sorted(position_margin(w, smoothing, synonyms) for w in words)
    return float(1.0 - np.prod(margins[:radius]))


def sample_documents(words: Sequence[str], smoothing: Smoothing, rng: np.random.Generator, n: int,
                     synonyms=None) -> list[list[str]]:
    """``n`` documents drawn from ``pi(words)``."""
    reps = [_replacements(w, smoothing, synonyms) for w in words]
    out = []
    for _ in range(n):
        flip = rng.random(len(words)) < smoothing.rate
        doc = []
        for w, r, f in zip(words, reps, flip):
            doc.append(r[int(rng.integers(len(r)))] if f and r else w)
        out.append(doc)
    return out


def drop_masks(words: Sequence[str]) -> list[str]:
    """The smoothed document without its ``[MASK]`` tokens (what ``drop_masked`` scoring sees)."""
    return [w for w in words if w != MASK]


def scored_text(words: Sequence[str], smoothing: Smoothing) -> str:
    """The text the scorer sees for a smoothed document (empty when everything was masked and dropped)."""
    if smoothing.mode == "mask" and smoothing.drop_masked:
        words = drop_masks(words)
    return " ".join(words)


def exact_smoothed_score(words: Sequence[str], f: Callable[[list[str]], float], smoothing: Smoothing,
                         synonyms=None) -> float:
    """``g`` by enumerating ``pi(words)`` (exponential: tiny vocabularies and tests only).

    ``f`` sees the smoothed document ``d'`` itself; compose it with :func:`drop_masks` to match
    :func:`smoothed_scores` with ``drop_masked``.
    """
    dists = [list(word_distribution(w, smoothing, synonyms).items()) for w in words]
    total = 0.0
    for combo in itertools.product(*dists):
        total += float(np.prod([p for _, p in combo])) * f([x for x, _ in combo])
    return total


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def smoothed_scores(score_texts: Callable[[list[str]], np.ndarray], documents: Sequence[str],
                    smoothing: Smoothing, rng: np.random.Generator, synonyms=None,
                    squash: Callable[[np.ndarray], np.ndarray] = sigmoid) -> tuple[np.ndarray, np.ndarray]:
    """Monte-Carlo ``g`` for each document and its half-width (an array, one per document).

    ``score_texts(texts)`` returns raw scores for one query (a cross-encoder's logits); ``squash``
    maps them into [0, 1] (the certificate needs a bounded ``f``). The half-widths hold for all
    ``documents`` together with probability >= 1 - ``smoothing.alpha`` (``smoothing.bound``).
    """
    texts = [scored_text(s, smoothing) for doc in documents
             for s in sample_documents(doc.split(), smoothing, rng, smoothing.samples, synonyms)]
    raw = np.asarray(score_texts(texts), dtype=np.float64)
    vals = np.asarray(squash(raw), dtype=np.float64)
    if vals.shape != (len(texts),):
        raise InputError(f"the scorer returned {vals.size} scores for {len(texts)} texts",
                         fix="return one score per text")
    if np.any(~np.isfinite(vals)) or np.any(vals < 0) or np.any(vals > 1):
        raise InputError("smoothing needs finite scores in [0, 1]", fix="pass a squash function such as sigmoid")
    vals = vals.reshape(len(documents), smoothing.samples)
    return vals.mean(axis=1), half_widths(vals, smoothing.alpha, smoothing.bound)


def certified_radii(g: np.ndarray, eps: np.ndarray, deltas: np.ndarray, k: int) -> np.ndarray:
    """Certified radius of every document in the top ``k`` of ``g`` (in rank order).

    ``deltas[j, R]`` is ``delta_R`` of document j for R = 0..R_max (column 0 is 0). -1: not even
    certified without an attack (the estimate's confidence interval overlaps the (k+1)-th).
    """
    g, eps, deltas = np.asarray(g, float), np.asarray(eps, float), np.asarray(deltas, float)
    order = np.argsort(-g, kind="stable")[:k]
    out = np.full(len(order), -1, dtype=int)
    for pos, i in enumerate(order):
        for r in range(deltas.shape[1]):
            low = g[i] - eps[i] - deltas[i, r]
            high = g + eps + deltas[:, r]
            above = int(np.sum(high >= low)) - int(high[i] >= low)
            if above < k:
                out[pos] = r
            else:
                break
    return out


def certified_share(radii: np.ndarray, radius: int) -> float:
    """Share of top-K documents certified at ``radius`` substitutions."""
    radii = np.asarray(radii)
    return float(np.mean(radii >= radius)) if len(radii) else 0.0
