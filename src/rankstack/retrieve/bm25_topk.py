"""Top-k matrices of a BM25 index -> the columns of a canonical (trec_eval-ordered) Run, vectorised.

Why: bm25s answers a batch of queries with two ``[queries, k]`` arrays (document rows and scores,
each row sorted by score). Turning them into a Run one query at a time (mask, gather, lexsort per
query) cost as much as the retrieval itself (the BM25 stage ran at 0.53-0.84x raw bm25s). Here the
whole batch is reordered at once: rows in qid order, scores > 0 kept, and only runs of tied scores
reordered by docid descending (trec_eval's tie-break) with one stable sort of an integer key, which
is linear on the already-sorted input. Hand-written because it is glue between bm25s's output and
rankstack's Run order. Also the weighted (expanded-query) search over bm25s's score matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rankstack.types import Run

__all__ = ["canonical_columns", "restrict_to_input", "weighted_topk"]


def canonical_columns(rows: np.ndarray, scores: np.ndarray, qids: Sequence[str], docids: np.ndarray,
                      doc_rank: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(qid, docid, score) columns in canonical order from per-query top-k matrices.

    ``rows``/``scores`` are ``[len(qids), k]`` (index rows, scores); ``doc_rank[i]`` is the position of
    ``docids[i]`` in string order. Rows with score <= 0 (no query term) are dropped; queries are emitted
    in qid string order; ties are broken by docid descending.
    """
    n_q = len(qids)
    if n_q == 0 or rows.size == 0:
        empty = np.array([], dtype="<U1")
        return empty, empty.copy(), np.array([], dtype=np.float64)
    qid_arr = np.asarray(qids, dtype=str)
    by_qid = np.argsort(qid_arr, kind="stable")
    rows, scores, qid_arr = rows[by_qid], scores[by_qid].astype(np.float64), qid_arr[by_qid]
    if (np.diff(scores, axis=1) > 0).any():  # not score-sorted (never from bm25s): sort each row first
        order = np.argsort(-scores, axis=1, kind="stable")
        rows, scores = np.take_along_axis(rows, order, 1), np.take_along_axis(scores, order, 1)
    keep = scores > 0
    counts = keep.sum(axis=1)
    rows, scores = rows[keep], scores[keep]  # row-major: query by query, each still score-sorted
    tied = scores[1:] == scores[:-1]
    if tied.any():
        # key = (group of equal scores within a query) major, docid rank descending minor
        n_docs = len(doc_rank)
        query_of = np.repeat(np.arange(n_q), counts)
        new_group = np.r_[True, ~tied | (query_of[1:] != query_of[:-1])]
        group = np.cumsum(new_group) - 1
        key = group.astype(np.int64) * n_docs + (n_docs - 1 - doc_rank[rows])
        perm = np.argsort(key, kind="stable")
        rows, scores = rows[perm], scores[perm]
    return np.repeat(qid_arr, counts), docids[rows], scores


def weighted_topk(model: Any, docids: np.ndarray, doc_rank: np.ndarray,
                  term_weights: Sequence[Sequence[tuple[str, float]]], k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Top-``k`` (docids, scores) per weighted query: ``sum_t w_t * BM25(t, d)`` over a bm25s index.

    bm25s holds BM25(t, d) per term as a CSC matrix, so a weighted sum is one ``bincount`` per query
    over the weighted columns (plus the weighted non-occurrence scores of bm25l/bm25+). Unknown terms
    score nothing; documents with score 0 are left out; ties go to the larger docid.
    """
    scores_csc = model.scores
    data, indices, indptr = scores_csc["data"], scores_csc["indices"], scores_csc["indptr"]
    nonocc = model.nonoccurrence_array
    vocab, n = model.vocab_dict, len(docids)
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for pairs in term_weights:
        known = [(vocab[t], float(w)) for t, w in pairs if t in vocab and w > 0]
        if not known:
            out.append((np.array([], dtype="<U1"), np.array([])))
            continue
        cols = np.array([c for c, _ in known], dtype=np.int64)
        weights = np.array([w for _, w in known])
        starts, ends = indptr[cols].astype(np.int64), indptr[cols + 1].astype(np.int64)
        lengths = ends - starts
        rows = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends)]) if lengths.sum() else \
            np.array([], dtype=np.int64)
        contrib = data[rows].astype(np.float64) * np.repeat(weights, lengths)
        scores = np.bincount(indices[rows], weights=contrib, minlength=n)
        if nonocc is not None:
            scores += float(np.dot(nonocc[cols], weights))
        cand = np.flatnonzero(scores > 0)
        if len(cand) > k:  # everything tied with the k-th score stays a candidate for the tie-break
            kth = np.partition(scores[cand], len(cand) - k)[len(cand) - k]
            cand = cand[scores[cand] >= kth]
        order = np.lexsort((-doc_rank[cand], -scores[cand]))[:k]
        out.append((docids[cand[order]], scores[cand[order]]))
    return out


def restrict_to_input(run: Run, inp: Run) -> Run:
    """Rows of ``run`` whose (qid, docid) pair is in ``inp`` (BM25 used as a reranker)."""
    pairs_in = set(zip(inp.qids.tolist(), inp.docids.tolist()))
    keep = np.array([(q, d) in pairs_in for q, d in zip(run.qids.tolist(), run.docids.tolist())], dtype=bool)
    return run.replace(qids=run.qids[keep], docids=run.docids[keep], scores=run.scores[keep])
