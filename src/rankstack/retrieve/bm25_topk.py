"""Top-k matrices of a BM25 index -> the columns of a canonical (trec_eval-ordered) Run, vectorised.

Why: bm25s answers a batch of queries with two ``[queries, k]`` arrays (document rows and scores,
each row sorted by score). Turning them into a Run one query at a time (mask, gather, lexsort per
query) cost as much as the retrieval itself (the BM25 stage ran at 0.53-0.84x raw bm25s). Here the
whole batch is reordered at once: rows in qid order, scores > 0 kept, and only runs of tied scores
reordered by docid descending (trec_eval's tie-break) with one stable sort of an integer key, which
is linear on the already-sorted input. Hand-written because it is glue between bm25s's output and
rankstack's Run order.

The top-k matrices themselves come from bm25s's score matrix (a CSC ``[docs, terms]`` of BM25(t, d))
through scipy.sparse: a block of queries is one sparse product ``Q [b, terms] @ M.T``, then one
``argpartition`` over the dense ``[b, docs]`` block -- the same sums and the same top-k as bm25s's
``retrieve``, which loops over queries in Python and scatters each posting list with ``np.add.at``.
Also the weighted (expanded-query) search over the same matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rankstack.types import Run

__all__ = ["block_topk", "canonical_columns", "restrict_to_input", "run_from_canonical", "run_from_results",
           "term_matrix", "weighted_topk"]

BLOCK_CELLS = 1 << 21  # scores held at once per block of queries (8 MB of float32)


def canonical_columns(rows: np.ndarray, scores: np.ndarray, qids: Sequence[str], docids: np.ndarray,
                      doc_rank: np.ndarray, rows_in_run_order: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(qid, docid, score) columns in canonical order from per-query top-k matrices.

    ``rows``/``scores`` are ``[len(qids), k]`` (index rows, scores); ``doc_rank[i]`` is the position of
    ``docids[i]`` in string order; ``rows_in_run_order`` says each row is already tie-broken (block_topk). Rows with score <= 0 (no query term) are dropped; queries are emitted
    in qid string order; ties are broken by docid descending.
    """
    n_q = len(qids)
    if n_q == 0 or rows.size == 0:
        empty = np.array([], dtype="<U1")
        return empty, empty.copy(), np.array([], dtype=np.float64)
    qid_arr = np.asarray(qids, dtype=str)
    by_qid = np.argsort(qid_arr, kind="stable")
    if not (by_qid == np.arange(n_q)).all():
        rows, scores, qid_arr = rows[by_qid], scores[by_qid], qid_arr[by_qid]
    if not rows_in_run_order and (np.diff(scores, axis=1) > 0).any():  # not score-sorted (never from bm25s): sort each row first
        order = np.argsort(-scores, axis=1, kind="stable")
        rows, scores = np.take_along_axis(rows, order, 1), np.take_along_axis(scores, order, 1)
    keep = scores > 0
    counts = keep.sum(axis=1)
    rows, scores = rows[keep], scores[keep].astype(np.float64)  # row-major: query by query, score-sorted
    tied = scores[1:] == scores[:-1]
    if not rows_in_run_order and tied.any():
        # key = (group of equal scores within a query) major, docid rank descending minor
        n_docs = len(doc_rank)
        query_of = np.repeat(np.arange(n_q), counts)
        new_group = np.r_[True, ~tied | (query_of[1:] != query_of[:-1])]
        group = np.cumsum(new_group) - 1
        key = group.astype(np.int64) * n_docs + (n_docs - 1 - doc_rank[rows])
        perm = np.argsort(key, kind="stable")
        rows, scores = rows[perm], scores[perm]
    return np.repeat(qid_arr, counts), docids[rows], scores


def run_from_canonical(qids: np.ndarray, docids: np.ndarray, scores: np.ndarray, name: str,
                       queries: Any = None) -> Run:
    """A Run from columns that :func:`canonical_columns` made: fresh arrays, canonical order, finite scores.

    ``Run.from_unique_ranked`` would re-check the order with string comparisons and copy all three
    columns: on scifact's 300 x 1000 rows that was as much as a fifth of the whole stage. The columns
    here are canonical by construction (tests/unit/retrieve/test_bm25_topk.py checks them against
    Run's own sort), BM25 scores are finite, and nothing else holds the arrays.
    """
    run = object.__new__(Run)
    object.__setattr__(run, "name", name)
    object.__setattr__(run, "queries", queries)
    object.__setattr__(run, "metadata", {})
    run._set_columns(qids, docids, scores)
    return run


def run_from_results(results: Sequence[tuple[np.ndarray, np.ndarray]], queries: Any, name: str) -> Run:
    """A Run from per-query (docids, scores) lists in trec_eval order, ``results[i]`` for ``queries.qids[i]``."""
    # emit queries in qid (string) order: the Run then finds its rows in canonical order
    order = sorted(range(len(queries)), key=lambda i: queries.qids[i])
    sizes = [len(results[i][0]) for i in order]
    qids = np.repeat(np.array([queries.qids[i] for i in order] or [""]), sizes) if order else np.array([])
    docids = np.concatenate([results[i][0] for i in order] or [np.array([], dtype="<U1")])
    scores = np.concatenate([results[i][1] for i in order] or [np.array([])])
    return Run.from_unique_ranked(qids, docids, scores, name=name, queries=queries)


def _ranking_keys(scores: np.ndarray, doc_rank: np.ndarray) -> np.ndarray:
    """int64 keys ordering (float32 score, docid rank) lexicographically: larger key = earlier in a run.

    A float32's bit pattern read as int32 is ordered like the float for values >= 0; flipping the
    magnitude bits of negatives makes it ordered everywhere. The docid rank fills the low 32 bits.
    """
    bits = np.ascontiguousarray(scores, dtype=np.float32).view(np.int32).astype(np.int64)
    bits = np.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    return (bits << 32) | doc_rank


def term_matrix(model: Any) -> Any:
    """bm25s's CSC score matrix as a scipy CSR ``[terms, docs]`` (a view of the same arrays where possible)."""
    import scipy.sparse as sp

    m = model.scores
    return sp.csr_matrix((m["data"], m["indices"], m["indptr"]), shape=(len(m["indptr"]) - 1, int(m["num_docs"])))


def block_topk(by_term: Any, vocab: dict[str, int], token_lists: Sequence[Sequence[str]], k: int,
               doc_rank: np.ndarray, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``[queries, k]`` (document rows, scores) over a :func:`term_matrix`, each row in trec_eval order.

    Rows are sorted by score descending, ties by docid descending. Which of several documents tied at
    the k-th score make the cut is, as in bm25s, the partition's choice (making it the larger docids
    cost a second partition on half of scifact's queries). Every token must be in ``vocab``; a token given twice counts twice (as in bm25s and Anserini). Only
    for methods without a non-occurrence score (lucene, robertson, atire).
    """
    import scipy.sparse as sp

    n_docs = by_term.shape[1]
    ids = [vocab[t] for toks in token_lists for t in toks]
    q_ptr = np.zeros(len(token_lists) + 1, dtype=np.int64)
    np.cumsum([len(t) for t in token_lists], out=q_ptr[1:])
    queries = sp.csr_matrix((np.ones(len(ids), dtype=by_term.dtype), np.asarray(ids, dtype=np.int64), q_ptr),
                            shape=(len(token_lists), by_term.shape[0]))
    k = min(k, n_docs)
    size = max(1, min(BLOCK_CELLS // max(n_docs, 1), -(-len(token_lists) // max(threads, 1))))
    rank = np.asarray(doc_rank, dtype=np.int64)

    def run(start: int) -> tuple[np.ndarray, np.ndarray]:
        scores = (queries[start:start + size] @ by_term).toarray()
        if k < n_docs:
            top = np.argpartition(scores, n_docs - k, axis=1)[:, n_docs - k:]
        else:
            top = np.broadcast_to(np.arange(n_docs), scores.shape)
        top_scores = np.take_along_axis(scores, top, 1)
        order = np.argsort(_ranking_keys(top_scores, rank[top]), axis=1)[:, ::-1]
        return np.take_along_axis(top, order, 1), np.take_along_axis(top_scores, order, 1)

    starts = range(0, len(token_lists), size)
    if threads > 1 and len(starts) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(run, starts))
    else:
        parts = [run(s) for s in starts]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


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
