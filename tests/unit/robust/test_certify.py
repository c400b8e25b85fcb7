"""The smoothing certificate against a brute-force check on a tiny vocabulary; its confidence bounds'
coverage; mask-dropping scoring."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rankstack.errors import InputError
from rankstack.robust.bounds import half_widths, hoeffding_half_width
from rankstack.robust.certify import (MASK, Smoothing, certified_radii, certified_share, drop_masks,
                                      exact_smoothed_score, overlap, position_margin, sample_documents,
                                      scored_text, smoothed_scores, tv_bound, word_distribution)
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


# ----------------------------------------------------------------------------- confidence bounds
def _draws(name, rng, shape):
    if name == "bernoulli":
        return (rng.random(shape) < 0.02).astype(float), 0.02
    if name == "beta":
        return rng.beta(2.0, 5.0, shape), 2.0 / 7.0
    return np.full(shape, 0.7), 0.7


@pytest.mark.parametrize("bound", ["hoeffding", "bernstein", "best"])
@pytest.mark.parametrize("dist", ["bernoulli", "beta", "point"])
@pytest.mark.parametrize("n", [16, 64])
def test_simultaneous_intervals_cover_the_true_mean(bound, dist, n):
    rng = np.random.default_rng([7, n, len(dist), len(bound)])
    reps, m = 400, 8
    hits = 0
    for _ in range(reps):
        values, mean = _draws(dist, rng, (m, n))
        eps = half_widths(values, 0.05, bound)
        assert eps.shape == (m,) and np.all(eps > 0)
        hits += bool(np.all(np.abs(values.mean(axis=1) - mean) <= eps))  # all m at once (union bound)
    assert hits / reps >= 0.95


def test_bernstein_is_narrower_for_low_variance_and_best_takes_the_smaller():
    rng = np.random.default_rng(0)
    low = rng.beta(60.0, 60.0, (3, 200))  # sd ~0.045
    assert np.all(half_widths(low, 0.05, "bernstein") < half_widths(low, 0.05, "hoeffding"))
    mixed = np.vstack([low, (rng.random((3, 200)) < 0.5).astype(float), rng.random((2, 200))])
    for values in (low, mixed, mixed[:, :2], mixed[:, :1]):
        best = half_widths(values, 0.05, "best")
        better_at_half = np.minimum(half_widths(values, 0.025, "hoeffding"), half_widths(values, 0.025, "bernstein"))
        assert np.all(best <= better_at_half + 1e-15)
    # high variance: Hoeffding wins and "best" falls back to it (at half the budget)
    high = (rng.random((4, 200)) < 0.5).astype(float)
    assert np.allclose(half_widths(high, 0.05, "best"), hoeffding_half_width(200, 0.05 / 4 / 2))
    # the union bound: more documents, wider intervals
    assert half_widths(low[:1], 0.05, "hoeffding")[0] < half_widths(low, 0.05, "hoeffding")[0]
    assert Smoothing(samples=200).hoeffding(3) == pytest.approx(half_widths(low, 0.05, "hoeffding")[0])


def test_invalid_bound_is_an_input_error():
    with pytest.raises(InputError, match="smoothing bound must be 'hoeffding', 'bernstein' or 'best', got 'chernoff'"):
        Smoothing(bound="chernoff")
    with pytest.raises(InputError, match="unknown confidence bound 'x'"):
        half_widths(np.zeros((2, 3)), 0.05, "x")
    with pytest.raises(InputError, match="alpha"):
        Smoothing(alpha=0.0)


# ----------------------------------------------------------------------------- drop_masked scoring
class Recorder:
    def __init__(self, f=lambda t: 0.25 + 0.5 * len(t.split()) / 10):
        self.texts, self.f = [], f

    def __call__(self, texts):
        self.texts += list(texts)
        return np.array([self.f(t) for t in texts])


def test_drop_masked_scores_no_mask_tokens_and_keeps_the_sample_count():
    docs = ["a b c d e", "b c", "e e d a", ""]
    sm = Smoothing(rate=0.7, mode="mask", samples=9)
    rec = Recorder()
    g, eps = smoothed_scores(rec, docs, sm, np.random.default_rng(1), squash=lambda x: x)
    assert len(rec.texts) == 9 * len(docs) and g.shape == eps.shape == (len(docs),)
    assert not any(MASK in t for t in rec.texts) and any(t == "" for t in rec.texts)
    assert sm.describe()["drop_masked"] is True
    kept = Recorder()
    smoothed_scores(kept, docs, Smoothing(rate=0.7, mode="mask", samples=9, drop_masked=False),
                    np.random.default_rng(1), squash=lambda x: x)
    assert len(kept.texts) == len(rec.texts) and any(MASK in t for t in kept.texts)
    # same draws, the masks removed
    assert rec.texts == [" ".join(drop_masks(t.split())) for t in kept.texts]
    assert scored_text(["a", MASK], Smoothing(mode="synonym")) == "a [MASK]"  # irrelevant in synonym mode
    assert Smoothing(mode="synonym").describe()["drop_masked"] is False


def test_drop_masked_estimates_the_same_kind_of_smoothed_score():
    def f_dropped(words):  # a bounded function of the smoothed document: f(drop_masks(d'))
        kept = drop_masks(words)
        return float(np.mean([WEIGHT[w] for w in kept])) if kept else 0.5

    sm = Smoothing(rate=0.6, mode="mask", samples=4000)
    g, eps = smoothed_scores(lambda ts: np.array([f_dropped(t.split()) for t in ts]),
                             [" ".join(d) for d in DOCS[:3]], sm, np.random.default_rng(0), squash=lambda x: x)
    exact = [exact_smoothed_score(d, f_dropped, sm) for d in DOCS[:3]]
    assert np.all(np.abs(g - exact) <= eps)
    def subs(w):
        return [x for x in "abcde" if x != w]

    for doc in DOCS:  # the coupling bound holds for the ablated score too
        g0 = exact_smoothed_score(doc, f_dropped, sm)
        for r in (1, 2):
            worst = max(abs(exact_smoothed_score(d, f_dropped, sm) - g0) for d in neighbours_within(doc, r, subs))
            assert worst <= tv_bound(doc, r, sm) + 1e-12


def test_all_masked_documents_are_scored(tmp_path, one_torch_thread):
    sm = Smoothing(rate=1.0, mode="mask", samples=3)
    rec = Recorder()
    g, _ = smoothed_scores(rec, ["a b c", "d"], sm, np.random.default_rng(0), squash=lambda x: x)
    assert rec.texts == [""] * 6 and np.allclose(g, 0.25)
    pytest.importorskip("transformers")
    from rankstack.rerank.cross_encoder import CrossEncoderReranker
    from tests.fixtures.models import make_tiny_bert

    ce = CrossEncoderReranker(str(make_tiny_bert(tmp_path / "ce")), precision="fp32", max_length=32)
    g, _ = smoothed_scores(lambda ts: ce.score(["cats purr"] * len(ts), ts), ["cats purr loudly", "dogs"], sm,
                             np.random.default_rng(0))
    assert np.all(np.isfinite(g)) and np.isclose(g[0], g[1])  # both are the empty document
