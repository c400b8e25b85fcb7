"""Pair filters: InPars top fraction by log-probability, and round-trip consistency with BM25."""

from __future__ import annotations

import pytest

from rankstack.errors import InputError
from rankstack.synth.filters import bm25_search, inpars_filter, round_trip_filter
from rankstack.synth.records import SyntheticQuery


def rec(qid: str, text: str, doc: str, score: float | None) -> SyntheticQuery:
    return SyntheticQuery(qid=qid, text=text, doc_id=doc, generator="g", prompt_id="p", seed=0, score=score)


def test_inpars_keeps_the_best_fraction_in_order():
    recs = [rec("a", "x y", "d1", -2.0), rec("b", "x y", "d2", -0.5), rec("c", "x y", "d3", -1.0),
            rec("d", "x y", "d4", -0.5), rec("e", "x y", "d5", -3.0)]
    kept, report = inpars_filter(recs, 0.4)
    assert [r.qid for r in kept] == ["b", "d"] and (report.kept, report.total) == (2, 5)
    kept, _ = inpars_filter(recs, 0.5)  # ceil(2.5) = 3
    assert [r.qid for r in kept] == ["b", "c", "d"]
    tie = [rec("z", "q", "d1", -1.0), rec("y", "q", "d2", -1.0)]
    assert [r.qid for r in inpars_filter(tie, 0.5)[0]] == ["y"]
    assert report.to_dict()["kept_fraction"] == 0.4 and "kept 2/5" in str(report)
    with pytest.raises(InputError, match="no log-probability"):
        inpars_filter([rec("a", "x", "d", None)], 0.5)
    with pytest.raises(InputError, match="fraction"):
        inpars_filter(recs, 0.0)


def test_round_trip_with_a_given_search():
    recs = [rec("a", "first", "d1", None), rec("b", "second", "d2", None), rec("c", "third", "d3", None)]
    tops = {"first": ["d9", "d1"], "second": ["d9", "d8", "d2"], "third": []}
    seen_k = []

    def search(texts, k):
        seen_k.append(k)
        return [tops[t][:k] for t in texts]
    kept, report = round_trip_filter(recs, search, k=2)
    assert [r.qid for r in kept] == ["a"] and (report.kept, report.total) == (1, 3) and seen_k == [2]
    assert report.params == {"k": 2}
    with pytest.raises(InputError, match="k must be"):
        round_trip_filter(recs, search, k=0)


def test_round_trip_with_bm25(tiny_collection):
    search = bm25_search(tiny_collection)
    recs = [rec("good", "why do cats purr", "d6", None), rec("bad", "talking parrots", "d1", None)]
    kept, report = round_trip_filter(recs, search, k=2)
    assert [r.qid for r in kept] == ["good"] and report.kept == 1
