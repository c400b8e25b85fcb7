"""Lucene's one-byte document-length norms for BM25, and a bm25s score matrix built with them.

Why: Lucene (and so Pyserini) does not keep a document's length exactly: ``BM25Similarity`` stores
it in one byte with ``SmallFloat.intToByte4`` (exact up to 40 tokens, then 4 significant bits: 40,
42, ..., 56, 60, 64, ...) and scores with the decoded value, while the average length stays exact.
bm25s uses exact lengths and offers no hook to change them, so with ``norms="lucene"`` rankstack
builds the term-by-document score matrix itself (hand-written because no library quantises lengths
this way) in bm25s's own layout, and bm25s retrieves from it as usual. The formula is Lucene's BM25
(Robertson & Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond", 2009, as in Lucene
8+): ``idf(t) * tf / (tf + k1 * (1 - b + b * len(d) / avgdl))``, ``idf = ln(1 + (N - df + .5) / (df + .5))``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["lucene_length", "lucene_norm_scores"]

_NUM_FREE_VALUES = 24  # 255 - SmallFloat.longToInt4(Integer.MAX_VALUE): lengths below are exact


def lucene_length(lengths: np.ndarray | Sequence[int]) -> np.ndarray:
    """``byte4ToInt(intToByte4(n))``: the document length Lucene's BM25 scores with."""
    n = np.asarray(lengths, dtype=np.int64)
    x = np.maximum(n - _NUM_FREE_VALUES, 0)
    bits = np.frexp(x.astype(np.float64))[1].astype(np.int64)  # bit length (exact below 2**53)
    shift = np.maximum(bits - 4, 0)
    return np.where(n < _NUM_FREE_VALUES, n, _NUM_FREE_VALUES + ((x >> shift) << shift))


def lucene_norm_scores(token_ids: Sequence[Sequence[int]], n_vocab: int, k1: float, b: float,
                       dtype: str = "float32") -> dict:
    """bm25s's ``scores`` dict (CSC ``[docs, terms]``) with Lucene's one-byte length norms.

    As Lucene's field statistics, ``N`` and ``avgdl`` count only documents with at least one term (bm25s
    counts every document: the two differ when a document has no indexable word, e.g. 2 in cranfield).
    """
    n_docs = len(token_ids)
    lengths = np.fromiter((len(t) for t in token_ids), dtype=np.int64, count=n_docs)
    flat = np.fromiter((i for t in token_ids for i in t), dtype=np.int64, count=int(lengths.sum()))
    doc = np.repeat(np.arange(n_docs, dtype=np.int64), lengths)
    pairs, tf = np.unique(flat * n_docs + doc, return_counts=True)  # sorted term-major: CSC order
    term, row = np.divmod(pairs, n_docs)
    df = np.bincount(term, minlength=n_vocab)
    doc_count = max(int((lengths > 0).sum()), 1)
    idf = np.log(1.0 + (doc_count - df + 0.5) / (df + 0.5))
    avgdl = lengths.sum() / doc_count
    norm = k1 * ((1 - b) + b * lucene_length(lengths) / avgdl)
    data = idf[term] * tf / (tf + norm[row])
    indptr = np.zeros(n_vocab + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    index_dtype = np.int32 if max(n_docs, len(data)) < 2**31 else np.int64
    return {"data": data.astype(dtype), "indices": row.astype(index_dtype), "indptr": indptr.astype(index_dtype),
            "num_docs": n_docs}
