"""Dense pseudo-relevance feedback: Rocchio over the embeddings of the feedback documents.

Why: it is the simple, strong baseline of dense PRF (Rocchio, "Relevance Feedback in Information
Retrieval", 1971; as the vector-PRF baseline of Li et al., "Pseudo Relevance Feedback with Deep
Language Models and Dense Retrievers: Successes and Pitfalls", TOIS 2023, and of ANCE-PRF, Yu et al.,
CIKM 2021): no training, one more search. The query vector moves toward the mean of its top-k document
vectors, ``q' = alpha * q + beta * mean(d_1..d_k)``, and the index is searched again with ``q'``.
``q'`` is not re-normalised: with inner-product search a query's norm does not change its ranking.

``dense >> dense_prf(fb_docs=3)`` takes the feedback documents from the input Run (any first stage);
``dense_prf`` on Queries runs its own dense search first. The stage reuses a
:class:`~rankstack.retrieve.dense.DenseRetriever`'s encoder and index (``vectors_of``), so nothing is
re-encoded; the neural PRF module builds on :func:`rocchio` and :func:`feedback_vectors`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rankstack.encode.base import cached_encode
from rankstack.errors import InputError
from rankstack.pipeline.stage import Stage, StageInput, queries_of
from rankstack.registry import Context, register
from rankstack.retrieve.dense import DenseRetriever, build_dense
from rankstack.types import Queries, Run

__all__ = ["rocchio", "feedback_vectors", "DensePRF"]


def rocchio(query_vecs: np.ndarray, feedback_vecs: np.ndarray, alpha: float = 1.0, beta: float = 0.5,
            mask: np.ndarray | None = None) -> np.ndarray:
    """``alpha * q + beta * mean of the feedback vectors`` per query.

    ``query_vecs`` is ``[n, d]``, ``feedback_vecs`` ``[n, k, d]``; ``mask`` (``[n, k]`` booleans)
    marks real feedback rows when some queries have fewer than ``k`` (a query with none keeps
    ``alpha * q``).
    """
    q = np.asarray(query_vecs, dtype=np.float32)
    fb = np.asarray(feedback_vecs, dtype=np.float32)
    if q.ndim != 2 or fb.ndim != 3 or fb.shape[0] != q.shape[0] or fb.shape[2] != q.shape[1]:
        raise InputError(f"rocchio: need query vectors [n, d] and feedback vectors [n, k, d], got "
                         f"{q.shape} and {fb.shape}")
    m = np.ones(fb.shape[:2], dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if m.shape != fb.shape[:2]:
        raise InputError(f"rocchio: mask has shape {m.shape}, feedback vectors {fb.shape[:2]}")
    counts = m.sum(axis=1, keepdims=True)
    mean = (fb * m[..., None]).sum(axis=1) / np.maximum(counts, 1)
    return (alpha * q + beta * mean).astype(np.float32)


def feedback_vectors(retriever: DenseRetriever, run: Run, qids: list[str], fb_docs: int) -> tuple[np.ndarray, np.ndarray]:
    """Stored vectors of each query's top ``fb_docs`` documents in ``run``: ``([n, k, d], mask [n, k])``."""
    top = {q: d[:fb_docs].tolist() for q, d, _ in run.groups()}
    vecs = np.zeros((len(qids), fb_docs, retriever.index.dim), dtype=np.float32)
    mask = np.zeros((len(qids), fb_docs), dtype=bool)
    for i, qid in enumerate(qids):
        docs = top.get(qid, [])
        if docs:
            vecs[i, :len(docs)] = retriever.index.vectors_of(docs)
            mask[i, :len(docs)] = True
    return vecs, mask


def _check(fb_docs: Any, alpha: Any, beta: Any) -> None:
    if isinstance(fb_docs, bool) or not isinstance(fb_docs, int) or fb_docs < 1:
        raise InputError(f"dense_prf: fb_docs must be a positive integer, got {fb_docs!r}")
    for name, value in (("alpha", alpha), ("beta", beta)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
            raise InputError(f"dense_prf: {name} must be a finite number >= 0, got {value!r}")
    if alpha == 0 and beta == 0:
        raise InputError("dense_prf: alpha and beta are both 0, so every query vector would be zero",
                         fix="e.g. alpha=1, beta=0.5")


class DensePRF(Stage):
    """Rocchio dense PRF over ``retriever``'s index: feedback from the input Run (or its own search)."""

    def __init__(self, retriever: DenseRetriever, fb_docs: int = 3, alpha: float = 1.0, beta: float = 0.5,
                 k: int | None = None) -> None:
        _check(fb_docs, alpha, beta)
        self.retriever = retriever if k is None else retriever.at_least(k)
        self.fb_docs, self.alpha, self.beta = fb_docs, float(alpha), float(beta)
        self.k = k or retriever.k
        self.name = "dense_prf"

    def at_least(self, k: int) -> DensePRF:
        if k <= self.k:
            return self
        return DensePRF(self.retriever, self.fb_docs, self.alpha, self.beta, k=k)

    def transform(self, inp: StageInput) -> Run:
        queries: Queries = queries_of(inp, "dense_prf")
        feedback = inp if isinstance(inp, Run) else self.retriever(inp)
        qids = list(queries.qids)
        qvecs = cached_encode(self.retriever.encoder, list(queries.texts), qids, self.retriever.cache_dir,
                              progress=False)
        fb, mask = feedback_vectors(self.retriever, feedback, qids, self.fb_docs)
        new = rocchio(qvecs, fb, self.alpha, self.beta, mask)
        scores, rows = self.retriever.index.search(new, self.k)
        keep = rows >= 0
        out_qids = np.repeat(np.asarray(qids, dtype=str), keep.sum(axis=1))
        return Run(out_qids, self.retriever.index.docids[rows[keep]], scores[keep].astype(np.float64),
                   name="dense_prf", queries=queries)


@register("dense_prf", kind="retriever")
def build_dense_prf(context: Context | None = None, fb_docs: int = 3, alpha: float = 1.0, beta: float = 0.5,
                    encoder: str = "minilm", index: str = "flat", m: int | None = None, nbits: int = 8,
                    nlist: int | None = None, nprobe: int | None = None, ef_search: int = 128,
                    precision: str = "auto", batch_size: int = 32, threads: int = 0,
                    max_length: int | None = None, k: int = 1000) -> DensePRF:
    """Rocchio PRF over ``dense(encoder=..., index=...)`` of the context's collection (same embedding
    cache as ``dense``, so nothing is encoded twice); the index arguments are ``dense``'s."""
    _check(fb_docs, alpha, beta)  # before the (slow) encoder loads
    retriever = build_dense(context=context, encoder=encoder, index=index, m=m, nbits=nbits, nlist=nlist,
                            nprobe=nprobe, ef_search=ef_search, precision=precision, batch_size=batch_size,
                            threads=threads, max_length=max_length, k=k)
    return DensePRF(retriever, fb_docs=fb_docs, alpha=alpha, beta=beta)
