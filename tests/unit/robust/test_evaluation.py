from __future__ import annotations

import numpy as np

from rankstack.pipeline.stage import FunctionStage
from rankstack.robust.evaluation import first_queries, perturbation_rows, summarise_attacks, summarise_drops
from rankstack.robust.perturb import get_perturbation
from rankstack.types import Qrels, Queries, Run


def test_summarise_drops():
    s = summarise_drops(np.array([1.0, 0.5, 0.2]), np.array([0.5, 0.5, 0.25]))
    assert s["mean_drop"] == np.mean([0.5, 0.0, -0.05])
    assert s["share_drop_gt_0.1"] == 1 / 3 and s["queries"] == 3


def test_perturbation_rows_pair_queries():
    qrels = Qrels.from_dict({"q1": {"d1": 1}, "q2": {"d2": 1}})
    queries = Queries.from_dict({"q1": "find cats", "q2": "find dogs"})

    def exact(qs):  # finds the right document only when the query text is intact
        rows = {q: ({"d1": 1.0} if t == "find cats" else {"d2": 1.0} if t == "find dogs" else {"d3": 1.0})
                for q, t in qs}
        return Run.from_dict(rows)

    rows, detail = perturbation_rows({"exact": FunctionStage(exact)}, queries, qrels,
                                     [get_perturbation("word_order"), get_perturbation("stopwords")], progress=False)
    by = {r["perturbation"]: r for r in rows}
    assert by["word_order"]["mean_drop"] == 1.0 and by["word_order"]["share_drop_gt_0.1"] == 1.0
    assert by["stopwords"]["mean_drop"] == 0.0 and by["stopwords"]["changed_queries"] == 0.0
    assert detail["queries"]["word_order"]["q1"] == "cats find"


def test_first_queries_sorted_and_judged():
    qrels = Qrels.from_dict({"b": {"d": 1}, "a": {"d": 1}})
    qs = Queries.from_dict({"c": "x", "b": "y", "a": "z"})
    assert list(first_queries(qs, qrels, 1).qids) == ["a"]


def test_summarise_attacks():
    rows = [{"collection": "c", "victim": "v", "method": "m", "budget": 0.1, "rank_before": 60, "rank_after": 5,
             "success": True, "size": 0.1, "ppl_ratio": 1.1},
            {"collection": "c", "victim": "v", "method": "m", "budget": 0.1, "rank_before": 70, "rank_after": 65,
             "success": False, "size": 0.05, "ppl_ratio": 1.0}]
    [s] = summarise_attacks(rows)
    assert s["success_rate"] == 0.5 and s["mean_rank_gain"] == 30 and s["max_size"] == 0.1
