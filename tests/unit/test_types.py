"""Run/Qrels/Queries: canonical trec_eval order, immutability, cut-offs, conversions."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.errors import InputError
from rankstack.types import Qrels, Queries, Run


def test_canonical_order_ties_by_docid_descending():
    run = Run.from_dict({"q2": {"a": 1.0, "b": 1.0, "c": 2.0}, "q1": {"x": 0.5}})
    assert run.query_ids == ["q1", "q2"]
    assert run.docids.tolist() == ["x", "c", "b", "a"]  # b before a: ties break by docid descending
    assert run.ranks().tolist() == [1, 1, 2, 3]


def test_run_is_immutable():
    run = Run.from_dict({"q": {"a": 1.0}})
    with pytest.raises(ValueError):
        run.scores[0] = 3.0
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        run.name = "other"  # type: ignore[misc]


def test_top_k_and_groups():
    run = Run.from_dict({"q1": {f"d{i}": float(i) for i in range(5)}, "q2": {"a": 1.0}})
    top = run.top_k(2)
    assert top.to_dict() == {"q1": {"d4": 4.0, "d3": 3.0}, "q2": {"a": 1.0}}
    assert [q for q, _, _ in run.groups()] == ["q1", "q2"]
    with pytest.raises(InputError):
        run.top_k(0)


def test_round_trip_dict_and_concat():
    a = Run.from_dict({"q1": {"a": 1.0}})
    b = Run.from_dict({"q2": {"b": 2.0}})
    both = Run.concat([a, b])
    assert both.to_dict() == {"q1": {"a": 1.0}, "q2": {"b": 2.0}}
    assert Run.empty().query_ids == []


def test_restrict_keeps_order():
    run = Run.from_dict({"q1": {"a": 1.0}, "q2": {"b": 2.0, "c": 3.0}})
    assert run.restrict(["q2"]).docids.tolist() == ["c", "b"]


def test_qrels_sorted_and_checked():
    q = Qrels.from_dict({"q2": {"b": 1}, "q1": {"a": 2, "c": 0}})
    assert q.query_ids == ["q1", "q2"]
    assert q.to_dict() == {"q1": {"a": 2, "c": 0}, "q2": {"b": 1}}
    with pytest.raises(InputError, match="more than once"):
        Qrels(np.array(["q", "q"]), np.array(["d", "d"]), np.array([1, 0]))


def test_queries_lookup_and_duplicates():
    q = Queries(("a", "b"), ("first", "second"))
    assert q["b"] == "second" and "a" in q and len(q) == 2
    assert q.subset(["b", "zzz"]).qids == ("b",)
    with pytest.raises(InputError, match="unknown query id"):
        q["zzz"]
    with pytest.raises(InputError, match="more than once"):
        Queries(("a", "a"), ("x", "y"))


def test_pandas_round_trip():
    run = Run.from_dict({"q1": {"a": 1.0, "b": 1.0}, "q2": {"c": 0.5}})
    frame = run.to_pandas()
    assert frame["rank"].tolist() == [1, 2, 1]
    assert Run.from_pandas(frame).to_dict() == run.to_dict()
    with pytest.raises(InputError, match="lacks column"):
        Run.from_pandas(frame.drop(columns=["score"]))


def test_from_unique_ranked_checks_order_and_finiteness():
    fast = Run.from_unique_ranked(["q1", "q1", "q2"], ["b", "a", "c"], [1.0, 1.0, 3.0])
    assert fast.to_dict() == Run.from_dict({"q1": {"a": 1.0, "b": 1.0}, "q2": {"c": 3.0}}).to_dict()
    unordered = Run.from_unique_ranked(["q2", "q1", "q1"], ["c", "a", "b"], [3.0, 1.0, 1.0])
    assert unordered.docids.tolist() == ["b", "a", "c"]  # fell back to the full sort
    with pytest.raises(InputError, match="finite"):
        Run.from_unique_ranked(["q"], ["d"], [np.inf])
