"""Vectorised top-k -> Run columns: the same rows and order as a per-query lexsort and as Run's own sort."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.data.beir import Document
from rankstack.retrieve.bm25 import BM25Retriever
from rankstack.retrieve.bm25_topk import canonical_columns
from rankstack.types import Queries, Run


def _reference(rows, scores, qids, docids):
    """The former per-query construction: drop score 0, lexsort by (score desc, docid desc), qid order."""
    out_q, out_d, out_s = [], [], []
    for i in sorted(range(len(qids)), key=lambda i: qids[i]):
        keep = scores[i] > 0
        d, s = docids[rows[i][keep]], scores[i][keep].astype(np.float64)
        order = sorted(range(len(d)), key=lambda j: d[j], reverse=True)  # docid descending, then
        order = sorted(order, key=lambda j: -s[j])  # a stable sort by score descending
        out_q += [qids[i]] * len(order)
        out_d += [d[j] for j in order]
        out_s += [s[j] for j in order]
    return out_q, out_d, out_s


@pytest.mark.parametrize("seed", range(5))
def test_matches_per_query_sort_with_many_ties(seed):
    rng = np.random.default_rng(seed)
    n_docs, n_q, k = 40, 7, 12
    docids = np.array([f"d{rng.integers(0, 10**6)}x{i}" for i in range(n_docs)])
    rows = np.stack([rng.choice(n_docs, k, replace=False) for _ in range(n_q)])
    scores = np.sort(rng.integers(0, 4, size=(n_q, k)).astype(np.float32), axis=1)[:, ::-1]  # ties, zeros
    qids = [f"q{j}" for j in rng.permutation(n_q)]
    rank = np.empty(n_docs, dtype=np.int64)
    rank[np.argsort(docids, kind="stable")] = np.arange(n_docs)
    q, d, s = canonical_columns(rows, scores, qids, docids, rank)
    assert (q.tolist(), d.tolist(), s.tolist()) == _reference(rows, scores, qids, docids)
    run = Run(q, d, s)  # the full constructor sorts canonically: nothing may move
    assert run.docids.tolist() == d.tolist() and run.qids.tolist() == q.tolist()


def test_unsorted_rows_are_sorted_first_and_empty_input_is_empty():
    docids = np.array(["a", "b", "c"])
    rank = np.arange(3)
    q, d, s = canonical_columns(np.array([[0, 1, 2]]), np.array([[1.0, 3.0, 1.0]]), ["q"], docids, rank)
    assert d.tolist() == ["b", "c", "a"] and s.tolist() == [3.0, 1.0, 1.0]
    q, d, s = canonical_columns(np.zeros((0, 3), dtype=int), np.zeros((0, 3)), [], docids, rank)
    assert len(q) == len(d) == len(s) == 0
    q, d, s = canonical_columns(np.array([[0, 1]]), np.array([[0.0, 0.0]]), ["q"], docids, rank)
    assert len(q) == 0


def test_stage_and_search_agree_and_keep_trec_eval_order():
    # identical documents tie exactly: the larger docid must come first (k = the size of each tie, since
    # which tied documents bm25s keeps at the k-th place is its choice)
    docs = [Document(f"d{i}", "", "cat dog" if i % 2 else "cat") for i in range(12)]
    r = BM25Retriever(k=6).index(docs)
    q = Queries(("z", "a", "empty"), ("cat", "dog cat", "zebra"))
    run = r(q)
    assert run.query_ids == ["a", "z"]
    assert run.for_query("z")[0].tolist() == ["d8", "d6", "d4", "d2", "d10", "d0"]  # shorter first
    assert run.for_query("a")[0].tolist() == ["d9", "d7", "d5", "d3", "d11", "d1"]
    searched = r.search(list(q.texts))
    assert searched[0][0].tolist() == run.for_query("z")[0].tolist()
    assert searched[1][1].tolist() == run.for_query("a")[1].tolist() and len(searched[2][0]) == 0
    full = Run(run.qids, run.docids, run.scores)
    assert full.docids.tolist() == run.docids.tolist()
