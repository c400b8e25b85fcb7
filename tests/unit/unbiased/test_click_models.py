"""Click models: simulated statistics match their definitions; seeds make runs reproducible."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.errors import InputError, UnknownComponentError
from rankstack.unbiased.click_models import (
    PBM_BASE,
    CascadeModel,
    DependentClickModel,
    PositionBasedModel,
    make_click_model,
    pbm_examination,
    simulate_sessions,
    topk_lists,
)

N = 200_000


def test_attractiveness_formula():
    m = PositionBasedModel(eps=0.1, max_grade=2)
    assert np.allclose(m.attractiveness(np.array([0, 1, 2, 5, -1])), [0.1, 0.4, 1.0, 1.0, 0.1])
    assert np.allclose(PositionBasedModel(eps=0.0, max_grade=4).attractiveness(np.array([0, 4])), [0.0, 1.0])


def test_pbm_examination_vector_and_extension():
    assert np.allclose(pbm_examination(10), PBM_BASE)
    assert np.allclose(pbm_examination(10, eta=2), np.array(PBM_BASE) ** 2)
    ext = pbm_examination(20)
    assert np.allclose(ext[10:], 0.06 * 10 / np.arange(11, 21))  # continuous 1/k tail beyond rank 10
    assert np.all(np.diff(ext) < 0)
    assert np.allclose(pbm_examination(5, eta=0), 1.0)


@pytest.mark.parametrize("eta", [1.0, 2.0])
def test_pbm_click_and_examination_rates_by_rank(eta):
    m = PositionBasedModel(eta=eta)
    labels = np.tile(np.array([2, 0, 1, 2, 0, 1, 2, 2, 0, 1, 2, 2]), (N, 1))
    clicks, props = m.simulate(labels, None, np.random.default_rng(0))
    expected = m.examination(12) * m.attractiveness(labels[0])
    se = np.sqrt(expected * (1 - expected) / N)
    assert np.all(np.abs(clicks.mean(0) - expected) < 5 * se + 1e-4)
    assert np.allclose(props[0], m.examination(12))
    # examination is independent of relevance: for y = ymax (attractiveness 1) CTR = examination
    top = labels[0] == 2
    assert np.allclose(clicks.mean(0)[top], m.examination(12)[top], atol=0.005)


def test_pbm_respects_mask():
    m = PositionBasedModel()
    mask = np.zeros((1000, 5), bool)
    mask[:, :3] = True
    clicks, props = m.simulate(np.full((1000, 5), 2), mask, np.random.default_rng(1))
    assert clicks[:, 3:].sum() == 0 and props[:, 3:].sum() == 0


def test_cascade_click_rates_and_single_click():
    m = CascadeModel(eps=0.1)
    labels = np.tile(np.array([0, 1, 0, 2, 1]), (N, 1))
    clicks, props = m.simulate(labels, None, np.random.default_rng(2))
    a = m.attractiveness(labels[0])
    p_exam = np.concatenate([[1.0], np.cumprod(1 - a)[:-1]])
    assert np.allclose(clicks.mean(0), p_exam * a, atol=0.004)
    assert clicks.sum(1).max() == 1
    # propensities: 1 up to and including the first click, 0 after it
    first = np.where(clicks.any(1), clicks.argmax(1), 5)
    ranks = np.arange(5)[None, :]
    assert np.array_equal(props, (ranks <= first[:, None]).astype(float))
    assert np.allclose(props.mean(0), p_exam, atol=0.004)


def test_dcm_continuation_and_propensities():
    lam = 0.6
    m = DependentClickModel(continuation=lam)
    labels = np.full((N, 6), 2)  # attractiveness 1: every examined doc is clicked
    clicks, props = m.simulate(labels, None, np.random.default_rng(3))
    assert np.allclose(clicks.mean(0), lam ** np.arange(6), atol=0.005)
    # propensity at rank k = product of lambdas over the clicks above it (every examined doc is clicked)
    above = np.concatenate([np.zeros((N, 1)), np.cumsum(clicks, 1)[:, :-1]], 1)
    assert np.allclose(props, lam ** above)
    # with no relevant documents DCM behaves like the cascade (the user never stops without a click)
    c0, _ = m.simulate(np.zeros((N, 4)), None, np.random.default_rng(4))
    a = 0.1
    expected = [a * (1 - a + a * lam) ** k for k in range(4)]
    assert np.allclose(c0.mean(0), expected, atol=0.003)


def test_dcm_rank_dependent_lambdas():
    m = DependentClickModel(continuation=[0.9, 0.5])
    assert np.allclose(m.lambdas(4), [0.9, 0.5, 0.5, 0.5])
    clicks, _ = m.simulate(np.full((N, 3), 2), None, np.random.default_rng(5))
    assert np.allclose(clicks.mean(0), [1.0, 0.9, 0.45], atol=0.005)


@pytest.mark.parametrize("model", [PositionBasedModel(eta=2), CascadeModel(), DependentClickModel()])
def test_determinism(model):
    labels = np.random.default_rng(9).integers(0, 3, size=(500, 10))
    a = model.simulate(labels, None, np.random.default_rng(42))
    b = model.simulate(labels, None, np.random.default_rng(42))
    c = model.simulate(labels, None, np.random.default_rng(43))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_simulate_sessions_uniform_queries_and_seed():
    qids = ["a", "b", "c", "d"]
    docids = np.array([["a1", "a2", ""], ["b1", "", ""], ["c1", "c2", "c3"], ["d1", "d2", ""]])
    labels = np.array([[1, 0, 0], [2, 0, 0], [0, 1, 2], [0, 0, 0]])
    lengths = np.array([2, 1, 3, 2])
    m = PositionBasedModel()
    log1 = simulate_sessions(m, qids, docids, labels, lengths, 40_000, np.random.default_rng(0))
    log2 = simulate_sessions(m, qids, docids, labels, lengths, 40_000, np.random.default_rng(0))
    assert np.array_equal(log1.clicks, log2.clicks) and np.array_equal(log1.qids, log2.qids)
    counts = np.array([np.sum(log1.qids == q) for q in qids])
    assert np.all(np.abs(counts / 40_000 - 0.25) < 0.01)
    assert np.all(log1.clicks[~log1.mask] == 0)
    assert set(log1.lengths[log1.qids == "b"].tolist()) == {1}


def test_topk_lists_follow_scores_with_trec_eval_ties():
    qids = np.array(["q1"] * 4 + ["q2"] * 2)
    docids = np.array(["d1", "d2", "d3", "d4", "e1", "e2"])
    labels = np.array([0, 1, 2, 0, 1, 0])
    scores = np.array([0.1, 0.5, 0.5, 0.9, 1.0, 2.0])
    names, d, y, n = topk_lists(qids, docids, labels, scores, 3)
    assert names == ["q1", "q2"]
    assert d[0].tolist() == ["d4", "d3", "d2"]  # tie 0.5: docid descending
    assert y[0].tolist() == [0, 2, 1] and n.tolist() == [3, 2]
    assert d[1, :2].tolist() == ["e2", "e1"]


def test_bad_parameters():
    with pytest.raises(InputError, match="eps"):
        PositionBasedModel(eps=1.5)
    with pytest.raises(InputError, match="eta"):
        PositionBasedModel(eta=-1)
    with pytest.raises(UnknownComponentError, match="did you mean 'pbm'"):
        make_click_model("pmb")
    with pytest.raises(InputError, match="Generator"):
        PositionBasedModel().simulate(np.zeros((2, 2)), None, 0)
    with pytest.raises(InputError, match="continuation"):
        DependentClickModel(continuation=1.2)
    with pytest.raises(InputError, match="max_grade"):
        CascadeModel(max_grade=0)


def test_click_models_are_registered_components():
    from rankstack.registry import build, names

    assert names("click_model") == ["cascade", "dcm", "pbm"]
    pbm = make_click_model("pbm", eta=2.0)
    assert isinstance(pbm, PositionBasedModel) and pbm.eta == 2.0
    assert isinstance(build({"name": "dcm", "args": {"continuation": 0.3}}, kind="click_model"), DependentClickModel)
    with pytest.raises(UnknownComponentError, match=r"unknown click_model 'cascde'; did you mean 'cascade'"):
        make_click_model("cascde")
    with pytest.raises(InputError, match="did you mean 'eta'"):  # arguments are checked by the registry too
        make_click_model("pbm", etta=1.0)
