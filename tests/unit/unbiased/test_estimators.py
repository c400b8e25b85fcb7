"""Unbiased learners: IPS unbiasedness and gradient, aggregation, naive/IPS/DLA/REM, errors, registry."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.data.letor import LetorData
from rankstack.errors import InputError, UnknownComponentError
from rankstack.unbiased.click_models import PositionBasedModel, simulate_sessions
from rankstack.unbiased.clicklog import ClickLog


# ----------------------------------------------------------------------------- IPS unbiasedness
def _toy_log(n=300_000, eta=1.0, seed=0):
    labels = np.array([[0, 2, 1, 0, 2, 1, 0, 2]])
    m = PositionBasedModel(eta=eta)
    docids = np.array([[f"d{i}" for i in range(8)]])
    log = simulate_sessions(m, ["q"], docids, labels, np.array([8]), n, np.random.default_rng(seed))
    return m, labels[0], log


@pytest.mark.parametrize("eta", [1.0, 2.0])
def test_ips_estimate_is_unbiased_and_naive_is_not(eta):
    m, labels, log = _toy_log(eta=eta)
    truth = m.attractiveness(labels)  # P(click | examined): the full-information relevance
    ips = (log.clicks / log.propensities).mean(0)
    naive = log.clicks.mean(0)
    n = len(log)
    se = np.sqrt(truth * (1 / m.examination(8) - truth) / n)  # std of the IPS mean
    assert np.all(np.abs(ips - truth) < 5 * se)
    assert np.max(np.abs(naive - truth)) > 0.3  # clicks alone under-rate lower ranks
    # naive even reverses the order of two equally relevant documents at ranks 2 and 8
    assert naive[1] > 3 * naive[7] and abs(ips[1] - ips[7]) < 0.05


def test_ips_weighted_loss_gradient_matches_full_information():
    torch = pytest.importorskip("torch")
    from rankstack.losses import get_loss

    m, labels, log = _toy_log(eta=1.0, seed=1)
    listnet = get_loss("listnet")
    scores = torch.tensor([[0.3, -0.2, 0.1, 0.5, -0.4, 0.0, 0.2, -0.1]], dtype=torch.float64)
    mask = torch.ones(1, 8, dtype=torch.bool)

    def grad(labels_, weights=None):
        s = scores.clone().requires_grad_(True)
        listnet(s, torch.as_tensor(labels_, dtype=torch.float64)[None], mask,
                None if weights is None else torch.as_tensor(weights, dtype=torch.float64)[None]).backward()
        return s.grad[0].numpy()

    ctr = log.clicks.mean(0)
    w = 1.0 / m.examination(8)
    full = grad(m.attractiveness(labels))
    # ListNet's per-list label normalisation divides by sum(ctr); undo it to compare the estimators
    ips = grad(ctr, w) * ctr.sum() / (ctr * w).sum()
    naive = grad(ctr)
    assert np.allclose(ips, full, atol=0.01)
    assert np.abs(naive - full).max() > 0.05


# ----------------------------------------------------------------------------- learners
def _toy_letor(q=40, n=8, f=4, seed=0) -> LetorData:
    rng = np.random.default_rng(seed)
    x = rng.random((q * n, f)).astype(np.float32)
    labels = np.digitize(x[:, 0] + 0.1 * rng.standard_normal(q * n), [0.5, 0.8])
    qids = np.repeat([f"q{i}" for i in range(q)], n)
    docids = np.array([f"q{i}d{j}" for i in range(q) for j in range(n)])
    return LetorData(qids, docids, labels.astype(np.int64), x, name="toy")


def _toy_clicks(data: LetorData, sessions=20_000, seed=0):
    from rankstack.unbiased.click_models import topk_lists

    # a logging ranker that is mostly wrong (ranks by feature 1, unrelated to relevance)
    qids, docids, labels, lengths = topk_lists(data.qids, data.docids, data.labels, data.features[:, 1], 6)
    m = PositionBasedModel(eta=1.0)
    return simulate_sessions(m, qids, docids, labels, lengths, sessions, np.random.default_rng(seed))


def test_aggregate_and_unknown_document():
    from rankstack.unbiased.estimators import aggregate

    data = _toy_letor()
    log = _toy_clicks(data, 2000)
    lists = aggregate(log, data)
    assert len(lists) == 40 and lists.sessions.sum() == 2000
    assert lists.clicks.sum() == log.clicks.sum()
    assert np.allclose(lists.ips_clicks.sum(), (log.clicks / np.where(log.mask, log.propensities, 1)).sum())
    bad = ClickLog.from_sessions([{"qid": "q0", "docids": ["nope"], "clicks": [1]}])
    with pytest.raises(InputError, match="does not contain"):
        aggregate(bad, data)


@pytest.mark.parametrize("name", ["naive", "ips", "dla", "rem"])
def test_learners_run_and_are_deterministic(name):
    pytest.importorskip("torch")
    from rankstack.unbiased.estimators import FitConfig, aggregate, train_estimator

    data = _toy_letor()
    lists = aggregate(_toy_clicks(data), data)
    cfg = FitConfig(epochs=60, em_iterations=10, em_epochs=6, seed=3)
    a = train_estimator(name, lists, cfg)
    b = train_estimator(name, lists, cfg)
    sa, sb = a.predict_scores(data), b.predict_scores(data)
    assert np.array_equal(sa, sb)
    if name != "naive":
        assert a.propensities is not None and a.propensities[0] == pytest.approx(1.0)
        assert np.all(a.propensities > 0)
    # feature 0 drives relevance: every debiasing learner finds it from clicks on this toy problem
    # (the naive one mostly learns the logger's feature 1, see the next test)
    corr = np.corrcoef(sa, data.features[:, 0])[0, 1]
    if name != "naive":
        assert corr > 0.5, corr


def test_ips_beats_naive_when_the_logger_is_wrong():
    pytest.importorskip("torch")
    from rankstack.unbiased.estimators import FitConfig, aggregate, train_full_info, train_ips, train_naive
    from rankstack.unbiased.study import evaluate_model

    data = _toy_letor(q=80, seed=1)
    lists = aggregate(_toy_clicks(data, 100_000, seed=2), data)
    cfg = FitConfig(epochs=40)
    naive = evaluate_model(train_naive(lists, cfg), data)["nDCG@10"]
    ips = evaluate_model(train_ips(lists, "logged", cfg), data)["nDCG@10"]
    full = evaluate_model(train_full_info(data, cfg), data)["nDCG@10"]
    assert ips > naive and ips >= 0.95 * full


def test_estimator_errors():
    from rankstack.unbiased.estimators import FitConfig, aggregate, train_estimator, train_ips

    data = _toy_letor()
    log = _toy_clicks(data, 500)
    no_p = ClickLog(log.qids, log.docids, log.clicks, log.lengths, None)
    lists = aggregate(no_p, data)
    with pytest.raises(InputError, match="no propensities"):
        train_ips(lists, "logged")
    with pytest.raises(UnknownComponentError, match="did you mean 'dla'"):
        train_estimator("dlaa", lists)
    with pytest.raises(InputError, match="positive"):
        train_ips(lists, np.array([1.0, 0.5, 0.0, 0.2, 0.1, 0.1]))
    with pytest.raises(InputError, match="unknown training setting"):
        FitConfig.from_dict({"epoch": 3})


def test_estimators_are_registered_components():
    from rankstack.registry import lookup, names
    from rankstack.unbiased.estimators import ESTIMATORS, train_dla, train_ips

    assert names("estimator") == sorted(ESTIMATORS)
    assert lookup("ips", "estimator") is train_ips and lookup("dla", "estimator") is train_dla
