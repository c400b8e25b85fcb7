"""The smoothing certificate against a brute-force check on a tiny vocabulary."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rankstack.robust.certify import (MASK, Smoothing, certified_radii, certified_share, exact_smoothed_score,
                                      overlap, position_margin, sample_documents, smoothed_scores, tv_bound,
                                      word_distribution)
from rankstack.robust.synonyms import DictSynonyms

SYN = DictSynonyms({"a": ["b"], "b": ["a", "c"], "c": ["b"], "d": ["e"], "e": ["d"]})
WEIGHT = {"a": 1.0, "b": 0.6, "c": 0.1, "d": 0.3, "e": 0.0, MASK: 0.2}


def f(words):
    """A toy relevance score in [0, 1]: the mean word weight."""
    return float(np.mean([WEIGHT[w] for w in words]))


def neighbours_within(words, radius, subs):
    """Every document reachable with at most ``radius`` substitutions (brute force)."""
    out = []
    for r in range(radius + 1):
        for pos in itertools.combinations(range(len(words)), r):
            for choice in itertools.product(*[subs(words[p]) for p in pos]):
                w = list(words)
                for p, c in zip(pos, choice):
                    w[p] = c
                out.append(w)
    return out


DOCS = [["a", "a", "d"], ["b", "c", "d"], ["c", "e", "e"], ["a", "b", "c"], ["d", "d", "e"]]
# d <-> e are mutual single neighbours: at rate 0.5 swapping them leaves pi unchanged (margin 1), so
# these documents get non-zero certified radii and the check below is not vacuous.
DOCS2 = [["a", "a", "d"], ["d", "d", "d"], ["e", "d", "e"], ["c", "e", "e"]]


@pytest.mark.parametrize("mode,rate", [("synonym", 0.5), ("synonym", 0.9), ("mask", 0.6)])
def test_tv_bound_holds_for_every_substitution(mode, rate):
    sm = Smoothing(rate=rate, mode=mode)
    syn = SYN if mode == "synonym" else None
    subs = SYN.candidates if mode == "synonym" else (lambda w: [x for x in "abcde" if x != w])
    for doc in DOCS:
        g = exact_smoothed_score(doc, f, sm, syn)
        for r in (1, 2, 3):
            worst = max(abs(exact_smoothed_score(d, f, sm, syn) - g) for d in neighbours_within(doc, r, subs))
            assert worst <= tv_bound(doc, r, sm, syn) + 1e-12


@pytest.mark.parametrize("docs,mode,rate,k,max_radius", [
    (DOCS, "synonym", 0.9, 2, 0), (DOCS, "mask", 0.6, 2, 0), (DOCS, "mask", 0.9, 1, 0), (DOCS, "synonym", 0.7, 3, 0),
    (DOCS2, "synonym", 0.5, 2, 1), (DOCS2, "synonym", 0.5, 1, 0)])
def test_certificate_matches_brute_force(docs, mode, rate, k, max_radius):
    sm = Smoothing(rate=rate, mode=mode)
    syn = SYN if mode == "synonym" else None
    subs = SYN.candidates if mode == "synonym" else (lambda w: [x for x in "abcde" if x != w])
    DOCS = docs  # noqa: N806
    g = np.array([exact_smoothed_score(d, f, sm, syn) for d in DOCS])
    deltas = np.array([[tv_bound(d, r, sm, syn) for r in range(4)] for d in DOCS])
    radii = certified_radii(g, np.zeros(len(DOCS)), deltas, k)
    assert radii.max() == max_radius  # the certificate's largest radius on this toy (pinned)
    order = np.argsort(-g, kind="stable")[:k]
    for pos, i in enumerate(order):
        for r in range(4):
            # exact worst case: every document attacked independently within radius r
            lo = min(exact_smoothed_score(d, f, sm, syn) for d in neighbours_within(DOCS[i], r, subs))
            hi = [max(exact_smoothed_score(d, f, sm, syn) for d in neighbours_within(DOCS[j], r, subs))
                  for j in range(len(DOCS))]
            robust = sum(1 for j in range(len(DOCS)) if j != i and hi[j] >= lo) < k
            if radii[pos] >= r:
                assert robust, f"doc {i} certified at radius {r} but an attack displaces it"
    assert certified_share(radii, 0) == 1.0  # exact scores with distinct values: all certified unattacked


def test_margins_and_distributions():
    sm = Smoothing(rate=0.5, mode="synonym")
    p = word_distribution("b", sm, SYN)
    assert p == pytest.approx({"b": 0.5, "a": 0.25, "c": 0.25})
    assert overlap(p, p) == pytest.approx(1.0)
    assert position_margin("zzz", sm, SYN) == 1.0  # no substitute: the attacker cannot touch it
    assert tv_bound(["zzz", "zzz"], 2, sm, SYN) == 0.0
    mask = Smoothing(rate=0.7, mode="mask")
    assert tv_bound(list("abcd"), 2, mask) == pytest.approx(1 - 0.7 ** 2)


def test_monte_carlo_estimate_is_seeded_and_close():
    sm = Smoothing(rate=0.5, mode="synonym", samples=4000)
    docs = [" ".join(d) for d in DOCS[:2]]

    def score(texts):
        return np.array([f(t.split()) for t in texts])

    g1, eps = smoothed_scores(score, docs, sm, np.random.default_rng(0), SYN, squash=lambda x: x)
    g2, _ = smoothed_scores(score, docs, sm, np.random.default_rng(0), SYN, squash=lambda x: x)
    assert np.array_equal(g1, g2)
    exact = [exact_smoothed_score(d, f, sm, SYN) for d in DOCS[:2]]
    assert np.allclose(g1, exact, atol=0.03) and eps[0] < 0.03
    s = sample_documents(["a", "b"], Smoothing(rate=1.0, mode="mask"), np.random.default_rng(0), 3)
    assert s == [[MASK, MASK]] * 3
