"""Unit tests of rankstack.evaluate: measure names, hand-computed values, missing-query modes, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rankstack.errors import InputError
from rankstack.evaluate import Evaluation, evaluate, parse_measure
from rankstack.evaluate.measures import Measure
from rankstack.types import Qrels, Run

pytrec_eval = pytest.importorskip("pytrec_eval")


@pytest.fixture()
def qrels() -> Qrels:
    return Qrels.from_dict({
        "q1": {"d1": 2, "d2": 0, "d3": 1, "d9": 1},
        "q2": {"x": 1},
        "q3": {"y": 0},              # judged but nothing relevant
        "q4": {"z": 3},              # absent from the run
    })


@pytest.fixture()
def run() -> Run:
    return Run.from_dict({
        "q1": {"d1": 3.0, "d2": 2.0, "d3": 1.0, "d4": 0.5},
        "q2": {"a": 2.0, "x": 1.0},
        "q3": {"y": 1.0},
        "q5": {"w": 1.0},            # not judged: ignored
    }, name="toy")


# names ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, family, cutoff, rel", [
    ("nDCG@10", "nDCG", 10, 1), ("nDCG", "nDCG", None, 1), ("AP", "AP", None, 1),
    ("AP@100", "AP", 100, 1), ("RR", "RR", None, 1), ("RR@10", "RR", 10, 1), ("R@100", "R", 100, 1),
    ("P@5", "P", 5, 1), ("Judged@10", "Judged", 10, 1), ("Success@10", "Success", 10, 1),
    ("Rprec", "Rprec", None, 1), ("NumRet", "NumRet", None, 1), ("NumRel", "NumRel", None, 1),
    ("NumRelRet", "NumRelRet", None, 1), ("AP(rel=2)", "AP", None, 2), ("P(rel=2)@5", "P", 5, 2),
    ("R(rel=2)@100", "R", 100, 2), ("RR(rel=2)@10", "RR", 10, 2), ("AP(rel=1)", "AP", None, 1),
])
def test_parse_known_names(text, family, cutoff, rel):
    m = parse_measure(text)
    assert (m.family, m.cutoff, m.rel) == (family, cutoff, rel)
    assert parse_measure(m.name) == m


@pytest.mark.parametrize("text, suggestion", [
    ("map", "AP"), ("ndcg_cut_10", "nDCG@10"), ("ndcg_cut.10", "nDCG@10"), ("P_5", "P@5"),
    ("recip_rank", "RR"), ("MRR@10", "RR@10"), ("ndcg@10", "nDCG@10"), ("nDGC@10", "nDCG@10"),
    ("recall_100", "R@100"), ("P", "P@10"), ("num_ret", "NumRet"),
])
def test_unknown_names_suggest(text, suggestion):
    with pytest.raises(InputError) as err:
        parse_measure(text)
    assert f"did you mean {suggestion!r}" in str(err.value)


@pytest.mark.parametrize("text", ["ERR@10", "nDCG(rel=2)@10", "AP(gains=2)", "P@0", "P@x", "NumRet@10",
                                  "AP(rel=x)", "AP(rel=0)", "AP(rel=-1)", "", "@10"])
def test_invalid_names(text):
    with pytest.raises(InputError):
        parse_measure(text)


# values ---------------------------------------------------------------------------------------
def test_hand_computed_values(run, qrels):
    ms = ["AP", "P@2", "RR", "R@2", "nDCG@2", "nDCG", "NumRet", "NumRel", "NumRelRet", "Rprec",
          "Success@1", "AP(rel=2)", "Judged@3"]
    ev = evaluate(run, qrels, ms)
    assert ev.queries == ["q1", "q2", "q3"]
    pq = ev.per_query
    # q1 ranking d1(2) d2(0) d3(1) d4(-); relevant at level 1: d1, d3, d9 (unretrieved)
    assert pq["AP"]["q1"] == pytest.approx((1 + 2 / 3) / 3)
    assert pq["P@2"]["q1"] == 0.5
    assert pq["RR"]["q2"] == 0.5
    assert pq["R@2"]["q1"] == pytest.approx(1 / 3)
    ideal = 2 + 1 / math.log2(3)
    assert pq["nDCG@2"]["q1"] == pytest.approx(2 / ideal)
    assert pq["nDCG"]["q1"] == pytest.approx((2 + 1 / 2) / (2 + 1 / math.log2(3) + 1 / 2))
    assert pq["NumRet"] == {"q1": 4, "q2": 2, "q3": 1}
    assert pq["NumRel"] == {"q1": 3, "q2": 1, "q3": 0}
    assert pq["Rprec"]["q1"] == pytest.approx(2 / 3)
    assert pq["Success@1"]["q2"] == 0.0
    assert pq["AP(rel=2)"]["q1"] == 1.0
    assert pq["Judged@3"]["q1"] == 1.0 and pq["Judged@3"]["q2"] == 0.5   # 1 judged of min(3, 2)
    for m in ms:                         # q3 has nothing relevant: 0 everywhere but the counts
        if m not in ("NumRet", "Judged@3"):
            assert pq[m]["q3"] == 0.0
    assert ev.mean["NumRet"] == 7        # counts are summed, as in trec_eval's "all" line
    assert ev.mean["AP"] == pytest.approx(np.mean(list(pq["AP"].values())))


def test_matches_pytrec_eval_and_c_flag(run, qrels):
    ms = {"AP": "map", "P@2": "P_2", "nDCG@2": "ndcg_cut_2", "RR": "recip_rank", "R@2": "recall_2",
          "NumRel": "num_rel", "Rprec": "Rprec"}
    ref = pytrec_eval.RelevanceEvaluator(
        qrels.to_dict(), {"map", "P.2", "ndcg_cut.2", "recip_rank", "recall.2", "num_rel", "Rprec"}
    ).evaluate(run.to_dict())
    skip = evaluate(run, qrels, list(ms))
    zero = evaluate(run, qrels, list(ms), missing="zero")
    assert sorted(ref) == skip.queries
    assert zero.queries == ["q1", "q2", "q3", "q4"]
    for ours, theirs in ms.items():
        for q in ref:
            assert skip.per_query[ours][q] == pytest.approx(ref[q][theirs], abs=1e-12)
            assert zero.per_query[ours][q] == pytest.approx(ref[q][theirs], abs=1e-12)
        if ours == "NumRel":   # trec_eval -c keeps the true count of the missing query
            assert zero.per_query[ours]["q4"] == 1
            continue
        assert zero.per_query[ours]["q4"] == 0.0
        # -c: the missing query enters the mean with 0
        assert zero.mean[ours] == pytest.approx(sum(ref[q][theirs] for q in ref) / 4, abs=1e-12)
        assert skip.mean[ours] == pytest.approx(sum(ref[q][theirs] for q in ref) / 3, abs=1e-12)


def test_names_kept_as_given_and_str_measure(run, qrels):
    ev = evaluate(run, qrels, "AP(rel=1)")
    assert ev.measures == ["AP(rel=1)"]
    assert set(ev.per_query) == {"AP(rel=1)"}
    assert ev["AP(rel=1)"] == evaluate(run, qrels, ["AP"]).mean["AP"]
    ev2 = evaluate(run, qrels, ["AP", "AP", Measure("P", 2)])
    assert ev2.measures == ["AP", "P@2"]


def test_to_dict_is_plain(run, qrels):
    import json

    ev = evaluate(run, qrels, ["nDCG@10", "AP"])
    d = ev.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["missing"] == "skip" and d["run"] == "toy"
    assert isinstance(ev, Evaluation)
    with pytest.raises(InputError, match="not evaluated"):
        ev["P@5"]


def test_negative_labels_gain_nothing_like_trec_eval():
    qd = {"q": {"a": -1, "b": 1, "c": 2}}
    rd = {"q": {"a": 3.0, "b": 2.0, "c": 1.0, "x": 0.5}}
    ref = pytrec_eval.RelevanceEvaluator(qd, {"ndcg", "ndcg_cut.2", "map"}).evaluate(rd)["q"]
    ev = evaluate(Run.from_dict(rd), Qrels.from_dict(qd), ["nDCG", "nDCG@2", "AP"])
    assert ev.mean["nDCG"] == pytest.approx(ref["ndcg"], abs=1e-12)
    assert ev.mean["nDCG@2"] == pytest.approx(ref["ndcg_cut_2"], abs=1e-12)
    assert ev.mean["AP"] == pytest.approx(ref["map"], abs=1e-12)


def test_tie_rule_docid_descending():
    """Golden: tied scores are ranked by docid descending (trec_eval), which changes the values."""
    run = Run.from_dict({"q": {"a": 1.0, "b": 1.0, "c": 1.0}})
    qrels = Qrels.from_dict({"q": {"a": 1}})
    ev = evaluate(run, qrels, ["RR", "AP", "nDCG@10", "P@1"])
    assert ev.mean["RR"] == pytest.approx(1 / 3)           # ascending order would give 1.0
    assert ev.mean["nDCG@10"] == pytest.approx(0.5)       # 1 / log2(4)
    assert ev.mean["P@1"] == 0.0


# errors ---------------------------------------------------------------------------------------
def test_errors(run, qrels):
    with pytest.raises(InputError, match="empty"):
        evaluate(Run.empty(), qrels, "AP")
    with pytest.raises(InputError, match="no query in common") as err:
        evaluate(Run.from_dict({"zz": {"d": 1.0}}), qrels, "AP")
    assert err.value.fix
    with pytest.raises(InputError, match="did you mean 'AP'"):
        evaluate(run, qrels, ["nDCG@10", "map"])
    with pytest.raises(InputError, match="missing"):
        evaluate(run, qrels, "AP", missing="ignore")
    with pytest.raises(InputError, match="no measures"):
        evaluate(run, qrels, [])
    with pytest.raises(InputError):
        evaluate(run.to_dict(), qrels, "AP")  # type: ignore[arg-type]


def test_large_run_is_fast():
    import time

    rng = np.random.default_rng(0)
    nq, nd = 1000, 1000
    qids = np.repeat([f"q{i:04d}" for i in range(nq)], nd)
    docids = np.tile([f"d{j}" for j in range(nd)], nq)
    run = Run(qids, docids, rng.integers(0, 50, nq * nd).astype(float))
    keep = rng.random(nq * nd) < 0.02
    qrels = Qrels(qids[keep], docids[keep], rng.integers(0, 3, keep.sum()))
    t = time.perf_counter()
    ev = evaluate(run, qrels, ["nDCG@10", "AP", "R@100", "P@5", "RR@10", "Judged@10", "Rprec"])
    assert time.perf_counter() - t < 10
    assert len(ev.queries) == nq
