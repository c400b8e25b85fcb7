"""Victims score new texts on the scale of their own rankings."""

from __future__ import annotations

import numpy as np

from rankstack.data.beir import Collection
from rankstack.retrieve.bm25 import BM25Retriever
from rankstack.robust.victims import BM25Victim, HybridVictim, Victim, rank_of
from rankstack.types import Queries


def test_rank_of_counts_ties_against_the_target():
    assert rank_of(5.0, np.array([6.0, 5.0, 1.0])) == 3
    assert rank_of(9.0, np.array([6.0, 5.0])) == 1


def test_bm25_victim_reproduces_the_index_scores(tiny_collection):
    coll = Collection(tiny_collection)
    bm25 = BM25Retriever().index(coll.corpus())
    v = BM25Victim(bm25, coll, depth=10)
    qs = coll.queries(None)
    lists = v.lists(qs)
    docs = {d.docid: d.contents for d in coll.corpus()}
    for qid, text in qs:
        ids, scores = lists[qid]
        if len(ids):
            again = v.score_texts(text, [docs[d] for d in ids])
            assert np.allclose(again, scores, rtol=1e-5, atol=1e-6)
    # adding a query word raises the score
    q = "why do cats purr"
    s = v.score_texts(q, [docs["d2"], "purr " + docs["d2"]])
    assert s[1] > s[0]


class _Fixed(Victim):
    def __init__(self, name, table):
        super().__init__(name, 10)
        self.table = table

    def _rank(self, queries):
        out = {}
        for q, _ in queries:
            ids = sorted(self.table, key=lambda d: -self.table[d])
            out[q] = (np.array(ids), np.array([self.table[d] for d in ids]))
        return out

    def score_texts(self, query, texts, qid=None, docid=None):
        return np.array([float(len(t)) for t in texts])


def test_hybrid_victim_fuses_component_ranks():
    a = _Fixed("a", {"x": 10.0, "y": 5.0, "z": 1.0})
    b = _Fixed("b", {"x": 3.0, "y": 4.0, "z": 2.0})
    h = HybridVictim(a, b, k=60, depth=10)
    lists = h.lists(Queries.from_dict({"q": "t"}))
    ids, scores = lists["q"]
    assert ids.tolist() == ["x", "y", "z"]
    assert scores[0] == 1 / 61 + 1 / 62
    # a text of length 11 beats x (10) in a and everything in b: ranks 1 and 1
    s = h.score_texts("t", ["a" * 11], qid="q", docid="z")
    assert s[0] == 2 / 61
