"""Click logs (format, round trip, bad lines), IPS unbiasedness, propensity estimation, learners."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rankstack.data.letor import LetorData
from rankstack.errors import InputError, UnknownComponentError
from rankstack.unbiased.click_models import PositionBasedModel, pbm_examination, simulate_sessions
from rankstack.unbiased.clicklog import ClickLog, read_clicklog, write_clicklog
from rankstack.unbiased.propensity import (
    estimate_swap_propensities,
    plot_propensities,
    propensity_table,
    simulate_swap_interventions,
)

SESSIONS = [
    {"qid": "q1", "docids": ["d1", "d2", "d3"], "clicks": [0, 1, 0], "propensities": [0.68, 0.61, 0.48]},
    {"qid": "q2", "docids": ["e1"], "clicks": [1], "propensities": [0.68]},
]


# ----------------------------------------------------------------------------- log format
def test_round_trip(tmp_path):
    log = ClickLog.from_sessions(SESSIONS)
    path = tmp_path / "c.jsonl"
    write_clicklog(log, path)
    back = read_clicklog(path)
    assert back.sessions() == SESSIONS
    assert back.lengths.tolist() == [3, 1]
    assert back.mask.tolist() == [[True, True, True], [True, False, False]]
    # a log without propensities round-trips too
    plain = [{k: v for k, v in s.items() if k != "propensities"} for s in SESSIONS]
    write_clicklog(ClickLog.from_sessions(plain), path)
    assert read_clicklog(path).propensities is None
    assert read_clicklog(path).sessions() == plain
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temporary file


def test_simulated_log_round_trip(tmp_path):
    docids = np.array([["a", "b", "c"], ["x", "y", ""]])
    log = simulate_sessions(PositionBasedModel(eta=2), ["q1", "q2"], docids, np.array([[2, 0, 1], [1, 0, 0]]),
                            np.array([3, 2]), 500, np.random.default_rng(0))
    write_clicklog(log, tmp_path / "s.jsonl")
    back = read_clicklog(tmp_path / "s.jsonl")
    assert np.array_equal(back.clicks, log.clicks) and np.array_equal(back.docids, log.docids)
    assert np.allclose(back.propensities, log.propensities)


BAD_LINES = [
    ('{"qid": "q", "docids": ["a", "b"], "clicks": [0]}', "2 docids but 1 clicks"),
    ('{"qid": "q", "docids": ["a"], "clicks": [2]}', "clicks must be 0 or 1"),
    ('{"qid": "q", "docids": ["a"], "clicks": [true]}', "clicks must be 0 or 1"),
    ('{"qid": "q", "docids": ["a"], "clicks": [0], "click": [1]}', "did you mean 'clicks'"),
    ('{"qid": "q", "docids": ["a"]}', "missing field(s) clicks"),
    ('{"qid": 7, "docids": ["a"], "clicks": [0]}', "qid must be a non-empty string"),
    ('{"qid": "q", "docids": [], "clicks": []}', "non-empty list"),
    ('{"qid": "q", "docids": ["a", "a"], "clicks": [0, 0]}', "shown twice"),
    ('{"qid": "q", "docids": ["a"], "clicks": [0], "propensities": [1.5]}', "not a number in [0, 1]"),
    ('{"qid": "q", "docids": ["a"], "clicks": [1], "propensities": [0]}', "propensity 0"),
    ('{"qid": "q", "docids": ["a"], "clicks": [0], "propensities": [0.5, 0.4]}', "but propensities 2"),
    ('{"qid": "q", "docids": ["a"], "clicks": [0]', "not valid JSON"),
    ('["q", ["a"], [0]]', "must be a JSON object"),
]


@pytest.mark.parametrize("line,message", BAD_LINES)
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"qid": "ok", "docids": ["a"], "clicks": [0]}\n\n' + line + "\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        read_clicklog(path)
    assert message in str(err.value)
    assert err.value.path == str(path) and err.value.line == 3
    assert err.value.fix


def test_mixed_propensities_and_file_level_errors(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text(json.dumps(SESSIONS[0]) + "\n" + '{"qid": "q", "docids": ["a"], "clicks": [0]}\n')
    with pytest.raises(InputError, match="some sessions have propensities") as err:
        read_clicklog(path)
    assert err.value.line == 2
    crlf = tmp_path / "crlf.jsonl"
    crlf.write_bytes(b'{"qid": "q", "docids": ["a"], "clicks": [0]}\r\n')
    with pytest.raises(InputError, match="CRLF"):
        read_clicklog(crlf)
    with pytest.raises(InputError, match="does not exist"):
        read_clicklog(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(InputError, match="empty"):
        read_clicklog(tmp_path / "empty.jsonl")


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


# ----------------------------------------------------------------------------- propensity estimation
def test_swap_interventions_recover_relative_propensities():
    rng = np.random.default_rng(0)
    q = 200
    labels = rng.integers(0, 3, size=(q, 10))
    docids = np.array([[f"q{i}d{j}" for j in range(10)] for i in range(q)])
    lengths = np.full(q, 10)
    lengths[:50] = 6  # short lists: arms beyond 6 compare against long-list queries only
    docids[:50, 6:] = ""
    m = PositionBasedModel(eta=1.0)
    qids = [f"q{i}" for i in range(q)]
    log = simulate_swap_interventions(m, qids, docids, labels, lengths, 300_000, rng)
    top1 = {qq: d[0] for qq, d in zip(qids, docids)}
    est, counts = estimate_swap_propensities(log, top1, 10)
    true = m.examination(10) / m.examination(10)[0]
    assert est[0] == pytest.approx(1.0)
    assert np.allclose(est, true, rtol=0.15, atol=0.02)
    assert counts.min() > 0
    # every session shows the original documents, only permuted
    assert sorted(log.docids[0, :log.lengths[0]].tolist()) == sorted(
        docids[qids.index(log.qids[0]), :log.lengths[0]].tolist())


def test_propensity_table_and_plot(tmp_path):
    true = pbm_examination(4)
    text = propensity_table(true, {"est": [1.0, 0.9, 0.7, 0.5]})
    assert "| 2 | 0.897 | 0.900 |" in text and "MAE" in text
    plot_propensities(true, {"est": [[1.0, 0.9, 0.7, 0.5], [1.0, 0.8, 0.6, 0.5]]}, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


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


# ----------------------------------------------------------------------------- study tables
def test_summarise_and_ndcg_table():
    from rankstack.unbiased.study import ndcg_table, summarise

    runs = [{"eta": 1.0, "fold": f, "true_propensities": [1.0, 0.5],
             "ndcg": {"full-info": {"nDCG@10": 0.5, "nDCG@10 (rel>0)": 0.7},
                      "naive": {"nDCG@10": 0.4 + 0.02 * f, "nDCG@10 (rel>0)": 0.6}},
             "propensities": {"dla": [1.0, 0.4 + 0.1 * f]}} for f in (1, 2)]
    s = summarise(runs)
    assert s["1.0"]["ndcg"]["naive"]["nDCG@10"] == pytest.approx(0.43)
    assert s["1.0"]["propensities"]["dla"] == pytest.approx([1.0, 0.55])
    assert "| naive | 0.4300" in ndcg_table(s)


def test_estimators_are_registered_components():
    from rankstack.registry import lookup, names
    from rankstack.unbiased.estimators import ESTIMATORS, train_dla, train_ips

    assert names("estimator") == sorted(ESTIMATORS)
    assert lookup("ips", "estimator") is train_ips and lookup("dla", "estimator") is train_dla
