"""rankstack.evaluate equals trec_eval (pytrec_eval) per query and on the mean, to 1e-9.

Runs: BM25 top-1000 on every BEIR collection under the data root, plus perturbed copies with many
ties (scores rounded, scores drawn from a small integer set) and random document subsets (so some
qrels queries lose all their results), and one LETOR run (MQ2008, a feature column as score).
Judged@k has no trec_eval counterpart and is checked against ir_measures.
"""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.data.beir import default_data_root
from rankstack.evaluate import evaluate
from rankstack.types import Qrels, Run

pytrec_eval = pytest.importorskip("pytrec_eval")

ROOT = default_data_root()
BEIR = ["scifact", "cranfield", "cisi", "msmarco_dl19_subset"]
GRADED = {"cranfield", "msmarco_dl19_subset"}

# ours -> pytrec_eval output key; every measure here takes the relevance level
LEVELLED = {
    "AP": "map", "AP@10": "map_cut_10", "AP@100": "map_cut_100", "RR": "recip_rank",
    "P@1": "P_1", "P@5": "P_5", "P@10": "P_10", "P@100": "P_100", "R@10": "recall_10",
    "R@100": "recall_100", "R@1000": "recall_1000", "Rprec": "Rprec", "NumRel": "num_rel",
    "NumRelRet": "num_rel_ret", "Success@1": "success_1", "Success@10": "success_10",
}
UNLEVELLED = {"nDCG": "ndcg", "nDCG@5": "ndcg_cut_5", "nDCG@10": "ndcg_cut_10",
              "nDCG@100": "ndcg_cut_100", "NumRet": "num_ret"}
TREC_MEASURES = {"map", "map_cut.10,100", "recip_rank", "P.1,5,10,100", "recall.10,100,1000", "Rprec",
                 "num_rel", "num_rel_ret", "num_ret", "success.1,10", "ndcg", "ndcg_cut.5,10,100"}
RR_CUTS = (1, 10)


def _with_level(name: str, level: int) -> str:
    if level == 1:
        return name
    family, at, cut = name.partition("@")
    return f"{family}(rel={level}){at}{cut}"


def _check_against_pytrec_eval(run: Run, qrels: Qrels, level: int) -> None:
    qd = qrels.to_dict()
    ref = pytrec_eval.RelevanceEvaluator(qd, TREC_MEASURES, relevance_level=level).evaluate(run.to_dict())
    names = {_with_level(k, level): v for k, v in LEVELLED.items()}
    if level == 1:
        names.update(UNLEVELLED)
    rr = {_with_level(f"RR@{k}", level): k for k in RR_CUTS}
    ev = evaluate(run, qrels, [*names, *rr])
    assert ev.queries == sorted(ref), "evaluated query set differs from trec_eval's"
    for ours, theirs in names.items():
        got = np.array([ev.per_query[ours][q] for q in ev.queries])
        want = np.array([ref[q][theirs] for q in ev.queries])
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9, err_msg=f"{ours} vs {theirs}")
        agg = want.sum() if ours.startswith("Num") else want.mean()
        assert abs(ev.mean[ours] - agg) <= 1e-9 * max(1.0, abs(agg)), ours
    for ours, k in rr.items():
        ref_k = pytrec_eval.RelevanceEvaluator(qd, {"recip_rank"}, relevance_level=level).evaluate(
            run.top_k(k).to_dict())
        got = np.array([ev.per_query[ours][q] for q in ev.queries])
        want = np.array([ref_k[q]["recip_rank"] for q in ev.queries])
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9, err_msg=ours)


def _perturbations(run: Run, seed: int) -> dict[str, Run]:
    rng = np.random.default_rng(seed)
    n = len(run)
    subset = rng.random(n) < 0.5
    qids = np.array(run.query_ids)
    dropped = np.isin(run.qids, qids[rng.random(len(qids)) < 0.2])  # whole queries disappear
    keep = subset & ~dropped
    return {
        "rounded": run.replace(scores=np.round(run.scores, 1)),
        "small-int": run.replace(scores=rng.integers(0, 4, n).astype(float)),
        "subset": run.replace(qids=run.qids[keep], docids=run.docids[keep],
                              scores=np.round(run.scores[keep])),
    }


@pytest.fixture(scope="module", params=BEIR)
def beir(request):
    name = request.param
    if not (ROOT / name).is_dir():
        pytest.skip(f"collection {name} not found under {ROOT}")
    from rankstack.data import Collection
    from rankstack.retrieve.bm25 import BM25Retriever

    coll = Collection(name, data_root=ROOT)
    run = BM25Retriever.from_collection(coll, k=1000)(coll.queries("test"))
    return name, run, coll.qrels("test")


def test_bm25_and_perturbed_runs_equal_trec_eval(beir):
    name, run, qrels = beir
    levels = (1, 2) if name in GRADED else (1,)
    for level in levels:
        _check_against_pytrec_eval(run, qrels, level)
    for pname, prun in _perturbations(run, seed=len(name)).items():
        for level in levels:
            _check_against_pytrec_eval(prun, qrels, level)


def test_missing_zero_matches_c_flag(beir):
    """trec_eval -c by hand: qrels queries without results add 0 (NumRel keeps its count)."""
    name, run, qrels = beir
    qids = run.query_ids
    half = run.restrict(qids[::2])
    ref = pytrec_eval.RelevanceEvaluator(qrels.to_dict(), {"map", "ndcg_cut.10", "P.5"}).evaluate(half.to_dict())
    ev = evaluate(half, qrels, ["AP", "nDCG@10", "P@5"], missing="zero")
    assert ev.queries == sorted(qrels.query_ids)
    for ours, theirs in {"AP": "map", "nDCG@10": "ndcg_cut_10", "P@5": "P_5"}.items():
        total = sum(ref[q][theirs] for q in ref)
        assert abs(ev.mean[ours] - total / len(qrels.query_ids)) <= 1e-9
        assert all(ev.per_query[ours][q] == 0.0 for q in ev.queries if q not in ref)


def test_judged_equals_ir_measures(beir):
    ir_measures = pytest.importorskip("ir_measures")
    name, run, qrels = beir
    # Distinct scores: ir_measures breaks ties by docid ascending for Judged, rankstack (and
    # trec_eval) descending; with no ties the definitions must agree exactly.
    distinct = run.replace(scores=-run.ranks().astype(float))
    rng = np.random.default_rng(7)
    short = rng.random(len(run)) < 0.004   # a few docs per query: fewer than k retrieved
    runs = {"distinct": distinct,
            "short": distinct.replace(qids=distinct.qids[short], docids=distinct.docids[short],
                                      scores=distinct.scores[short])}
    qrels_df = qrels.to_dict()
    for label, r in runs.items():
        # ir_measures fills qrels queries missing from the run with 0: trec_eval -c, our "zero".
        ev = evaluate(r, qrels, ["Judged@10", "Judged@100"], missing="zero")
        ref = {(m.query_id, str(m.measure)): m.value
               for m in ir_measures.iter_calc([ir_measures.Judged @ 10, ir_measures.Judged @ 100],
                                              qrels_df, r.to_dict())}
        for k in (10, 100):
            assert {q for q, m in ref if m == f"Judged@{k}"} == set(ev.queries)
            for q in ev.queries:
                assert abs(ev.per_query[f"Judged@{k}"][q] - ref[(q, f"Judged@{k}")]) <= 1e-12, (label, q)
            agg = ir_measures.calc_aggregate([ir_measures.Judged @ k], qrels_df, r.to_dict())
            assert abs(ev.mean[f"Judged@{k}"] - agg[ir_measures.Judged @ k]) <= 1e-9, label


def test_letor_feature_run_equals_trec_eval():
    path = ROOT / "letor" / "MQ2008" / "S1.txt"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    from rankstack.data import read_letor

    data = read_letor(path)
    qrels = data.qrels()
    for column in (0, 38):   # QueryLevelNorm features: many exact ties (0.0 and 1.0)
        run = Run(data.qids, data.docids, data.features[:, column].astype(np.float64), name=f"f{column + 1}")
        for level in (1, 2):
            _check_against_pytrec_eval(run, qrels, level)


def test_tie_golden_pytrec_eval_agrees():
    """Ties by docid descending: RR 1/3 here (ascending would give 1); pytrec_eval agrees."""
    run = Run.from_dict({"q": {"d1": 1.0, "d2": 1.0, "d3": 1.0, "d0": 0.5}})
    qrels = Qrels.from_dict({"q": {"d1": 1, "d0": 1}})
    ev = evaluate(run, qrels, ["RR", "AP", "P@1"])
    assert ev.mean["RR"] == pytest.approx(1 / 3)
    assert ev.mean["AP"] == pytest.approx((1 / 3 + 2 / 4) / 2)
    ref = pytrec_eval.RelevanceEvaluator(qrels.to_dict(), {"recip_rank", "map"}).evaluate(run.to_dict())
    assert ref["q"]["recip_rank"] == pytest.approx(ev.mean["RR"])
    assert ref["q"]["map"] == pytest.approx(ev.mean["AP"])
