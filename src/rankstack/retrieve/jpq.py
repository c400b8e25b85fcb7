"""JPQ: product-quantisation centroids (and optionally the query encoder) trained for ranking.

Zhan, Mao, Liu, Guo, Zhang & Ma, "Jointly Optimizing Query Encoder and Product Quantization to
Improve Retrieval Performance" (CIKM 2021). A PQ index compresses each document to ``m`` one-byte
codes; plain PQ picks its centroids by k-means (reconstruction error), which is not what ranking
needs. JPQ keeps every document's codes fixed and makes the centroid table trainable: a document's
vector is the concatenation of its code's centroids, the score a query's inner product with it, and
a ranking loss over hard negatives retrieved from the *current* PQ index moves the centroids (and,
optionally, the query encoder) so that relevant documents score higher. The index stays exactly as
small as the PQ index it started from.

This module holds the pieces that need no training loop: :func:`pq_parts` reads the codes,
centroids and OPQ rotation out of a FAISS ``IndexPQ`` or ``OPQ + IndexPQ`` (Ge et al., "Optimized
Product Quantization", 2013: the rotation stays fixed, as in JPQ), :class:`JPQModule` is the torch
scorer (the Trainer's ``forward(inputs) -> scores[B, L]``), :func:`sync_centroids` writes trained
centroids back into the FAISS index (FAISS then searches with them: ADC over the same codes) and
:func:`save_jpq_index` saves it as a ``dense-index`` that ``dense(index=FOLDER)`` loads, with the
trained query encoder, if any, as a sentence-transformers folder inside. Training is in
:mod:`rankstack.retrieve.jpq_train`. Hand-written because the reference code (jingtaozhan/JPQ) is a
GPU research script over its own MS MARCO preprocessing, not a library.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.errors import InputError, require
from rankstack.retrieve.dense_index import DenseIndex

__all__ = ["PQParts", "pq_parts", "JPQModule", "sync_centroids", "save_jpq_index", "QUERY_ENCODER_DIR"]

#: folder (inside a saved JPQ index) of a trained query encoder
QUERY_ENCODER_DIR = "query_encoder"


def _faiss():
    return require("faiss", "dense", "JPQ indexes")


class PQParts:
    """What JPQ reads from a FAISS PQ index: ``codes [n, m]`` (int64), ``centroids [m, ksub, dsub]``
    (float32), the OPQ ``rotation [d, d]`` (``None`` for plain PQ) and the inner ``IndexPQ``."""

    def __init__(self, codes: np.ndarray, centroids: np.ndarray, rotation: np.ndarray | None, pq_index: Any) -> None:
        self.codes, self.centroids, self.rotation, self.pq_index = codes, centroids, rotation, pq_index

    def reconstruct(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Documents' vectors in the (rotated) space the codes live in: centroids concatenated."""
        codes = self.codes if rows is None else self.codes[rows]
        m = np.arange(self.centroids.shape[0])
        return self.centroids[m, codes].reshape(len(codes), -1)


def pq_parts(index: Any) -> PQParts:
    """Codes, centroids and rotation of a FAISS ``IndexPQ`` or ``IndexPreTransform(OPQMatrix, IndexPQ)``
    with 8-bit codes (JPQ's setting: one byte per sub-vector)."""
    faiss = _faiss()
    rotation = None
    inner = faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexPreTransform):
        if inner.chain.size() != 1:
            raise InputError("JPQ: the index applies several transforms; expected one OPQ rotation")
        vt = faiss.downcast_VectorTransform(inner.chain.at(0))
        if not isinstance(vt, faiss.LinearTransform) or vt.have_bias:
            raise InputError(f"JPQ: unsupported pre-transform {type(vt).__name__}", fix="use an OPQ or PQ index")
        rotation = faiss.vector_to_array(vt.A).reshape(vt.d_out, vt.d_in).astype(np.float32)
        inner = faiss.downcast_index(inner.index)
    if not isinstance(inner, faiss.IndexPQ):
        raise InputError(f"JPQ: needs a PQ or OPQ+PQ index, got {type(inner).__name__}",
                         fix="build the starting index with index='pq' or index='opq'")
    pq = inner.pq
    if pq.nbits != 8:
        raise InputError(f"JPQ: needs 8-bit codes (one byte per sub-vector), the index has nbits={pq.nbits}",
                         fix="build the starting index with nbits=8")
    codes = faiss.vector_to_array(inner.codes).reshape(inner.ntotal, pq.code_size).astype(np.int64)
    centroids = faiss.vector_to_array(pq.centroids).reshape(pq.M, pq.ksub, pq.dsub).astype(np.float32)
    return PQParts(codes, centroids, rotation, inner)


def sync_centroids(parts: PQParts, centroids: Any) -> None:
    """Write ``centroids`` (a tensor or array ``[m, ksub, dsub]``) into the FAISS index's PQ table, so
    FAISS searches with them (the codes are unchanged)."""
    faiss = _faiss()
    arr = centroids.detach().cpu().float().numpy() if hasattr(centroids, "detach") else np.asarray(centroids)
    if arr.shape != parts.centroids.shape:
        raise InputError(f"JPQ: centroids of shape {arr.shape}, the index needs {parts.centroids.shape}")
    faiss.copy_array_to_vector(np.ascontiguousarray(arr, dtype=np.float32).ravel(), parts.pq_index.pq.centroids)


@functools.cache
def _module_class() -> type:
    """The torch module class, defined on first use so importing this file never imports torch."""
    import torch

    class _JPQ(torch.nn.Module):
        def __init__(self, parts: PQParts, query_encoder: Any = None, scale: float = 1.0) -> None:
            super().__init__()
            self.centroids = torch.nn.Parameter(torch.from_numpy(parts.centroids.copy()))
            self.register_buffer("codes", torch.from_numpy(parts.codes), persistent=False)
            rot = parts.rotation
            self.register_buffer("rotation", None if rot is None else torch.from_numpy(rot), persistent=False)
            self.query_encoder = query_encoder  # a SentenceTransformer being trained, or None (frozen)
            self.scale = float(scale)

        def reconstruct(self, rows: Any) -> Any:
            """``[..., d]`` vectors (rotated space) of document rows ``[...]`` from the current centroids."""
            codes = self.codes[rows]                                   # [..., m]
            m = torch.arange(self.centroids.shape[0], device=codes.device)
            return self.centroids[m, codes].flatten(-2)                # [..., m, dsub] -> [..., d]

        def queries(self, inputs: dict[str, Any]) -> Any:
            """Query vectors ``[B, d]`` in the rotated space: cached vectors, or the encoder's output."""
            if "q_vec" in inputs:
                q = inputs["q_vec"].float()
            else:  # unit length, as rankstack's encoders return (MiniLM normalises already)
                q = torch.nn.functional.normalize(
                    self.query_encoder(inputs["q_features"])["sentence_embedding"].float(), dim=-1)
            return q if self.rotation is None else q @ self.rotation.T

        def forward(self, inputs: dict[str, Any]) -> Any:
            q = self.queries(inputs)                                   # [B, d]
            docs = self.reconstruct(inputs["rows"])                    # [B, L, d]
            return self.scale * torch.einsum("bd,bld->bl", q, docs)

    return _JPQ


def JPQModule(parts: PQParts, query_encoder: Any = None, scale: float = 1.0) -> Any:  # noqa: N802
    """The trainable JPQ scorer: ``forward({"q_vec" | "q_features", "rows": [B, L]}) -> scale * q.d``
    over PQ-reconstructed documents (``rows`` index the index's documents)."""
    return _module_class()(parts, query_encoder, scale)


def save_jpq_index(index: DenseIndex, path: str | Path, *, encoder_spec: str | None, query_encoder: Any = None,
                   jpq: dict[str, Any] | None = None, encoder_backend: str = "torch", precision: str = "fp32",
                   overwrite: bool = False, inputs: tuple[str | Path, ...] = ()) -> DenseIndex:
    """Save a (JPQ-trained) PQ/OPQ index atomically as a ``dense-index`` folder.

    With ``query_encoder`` (a trained SentenceTransformer) it is written to ``QUERY_ENCODER_DIR`` inside
    the folder, the manifest's encoder spec points there and the index's encoder id becomes that
    folder's (so only the trained encoder can search it); otherwise ``encoder_spec`` (the frozen query
    encoder, e.g. ``"minilm"``) is recorded. Returns the index as saved.
    """
    from rankstack.encode.base import load_encoder

    extra = {"encoder_spec": encoder_spec, "encoder_backend": encoder_backend, "precision": precision,
             "jpq": dict(jpq or {})}
    if query_encoder is None:
        index.save(path, extra_params=extra, overwrite=overwrite, inputs=inputs)
        return index
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / QUERY_ENCODER_DIR
        query_encoder.save(str(folder))
        enc_id = load_encoder(str(folder), precision="fp32").encoder_id  # the id of exactly these files
        saved = DenseIndex(index.index, index.docids, enc_id, index.params)
        extra.update(encoder_spec=QUERY_ENCODER_DIR)
        saved.save(path, extra_params=extra, overwrite=overwrite, inputs=inputs,
                   write_extra=lambda tmp: shutil.copytree(folder, tmp / QUERY_ENCODER_DIR))
    return saved
