"""FAISS vector indexes for dense retrieval: parameters, construction, search knobs, save/load.

Why FAISS (Johnson, Douze & Jégou, "Billion-scale similarity search with GPUs", 2017): one library
gives exact search and the standard approximate indexes behind one API, with its own (non-pickle)
binary format. Index types, all over inner product of unit vectors (= cosine):

- ``flat``: exact search, the reference every approximate index is measured against.
- ``hnsw``: graph search (Malkov & Yashunin, "Efficient and robust approximate nearest neighbor search
  using Hierarchical Navigable Small World graphs", 2016); ``m`` links per node, ``ef_search`` beam.
- ``ivf``: inverted file over k-means cells (Sivic & Zisserman, "Video Google", 2003); ``nlist``
  cells, ``nprobe`` visited per query.
- ``pq``: product quantisation (Jégou, Douze & Schmid, "Product quantization for nearest neighbor
  search", 2011): ``m`` sub-vectors of ``nbits`` bits, so ``m * nbits / 8`` bytes per document
  (384-d MiniLM is 1,536 bytes in fp32: m=96 is 16x smaller, m=48 is 32x).
- ``opq``: PQ after a learned rotation (Ge, He, Ke & Sun, "Optimized Product Quantization", 2013)
  that balances the variance of the sub-vectors; same bytes per document as ``pq``.
- ``ivfpq``: IVF cells with PQ-coded residuals (Jégou et al. 2011), for large collections.

A saved index carries a manifest that pins the encoder id (model, weights checksum, max length) of
the vectors; searching with any other encoder raises an InputError instead of returning nonsense.
Split from :mod:`rankstack.retrieve.dense` (the retriever stage) so each file holds one concept.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.errors import InputError, require
from rankstack.storage import atomic_directory, atomic_write_text, read_manifest, write_manifest

__all__ = ["DenseIndex", "INDEX_TYPES", "KIND", "FORMAT_VERSION", "default_nlist"]

log = logging.getLogger(__name__)

INDEX_TYPES = ("flat", "hnsw", "ivf", "pq", "opq", "ivfpq")
KIND = "dense-index"
FORMAT_VERSION = 1


def _faiss():
    return require("faiss", "dense", "dense vector indexes")


def default_nlist(n: int) -> int:
    """About 4*sqrt(n) IVF cells, but at least 39 training vectors per cell (FAISS's k-means floor)."""
    return int(max(1, min(round(4 * math.sqrt(n)), n // 39)))


def _positive_int(name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"dense: {name} must be a positive integer, got {value!r}")


def _index_params(index: str, dim: int, n: int, m: int | None, nbits: int, nlist: int | None,
                  nprobe: int | None, ef_search: int, ef_construction: int) -> dict[str, Any]:
    """Validate and complete the parameters of one index type (defaults depend on dim and n)."""
    if index not in INDEX_TYPES:
        raise InputError(f"dense: unknown index type {index!r}", fix=f"choose one of {', '.join(INDEX_TYPES)}")
    for name, v in (("m", m), ("nlist", nlist), ("nprobe", nprobe)):
        _positive_int(name, v, allow_none=True)
    for name, v in (("nbits", nbits), ("ef_search", ef_search), ("ef_construction", ef_construction)):
        _positive_int(name, v)
    p: dict[str, Any] = {"type": index}
    if index == "hnsw":
        p.update(m=m or 32, ef_search=ef_search, ef_construction=ef_construction)
    if index in ("pq", "opq", "ivfpq"):
        m = m or max(1, dim // 8)  # 32x compression by default
        if dim % m:
            raise InputError(f"dense: m={m} does not divide the vector dimension {dim}",
                             fix=f"choose m among {[x for x in range(1, dim + 1) if dim % x == 0 and x <= 128]}")
        if not 1 <= nbits <= 16:
            raise InputError(f"dense: nbits must be in 1..16, got {nbits}")
        if n < 2 ** nbits:
            raise InputError(f"dense: PQ with nbits={nbits} trains {2 ** nbits} centroids per sub-vector but "
                             f"the collection has only {n} documents", fix=f"use nbits <= {int(math.log2(n))}")
        p.update(m=m, nbits=nbits, bytes_per_vector=m * nbits / 8)
    if index in ("ivf", "ivfpq"):
        nlist = nlist or default_nlist(n)
        if nlist > n:
            raise InputError(f"dense: nlist={nlist} cells for only {n} documents", fix="use a smaller nlist")
        p.update(nlist=nlist, nprobe=min(nprobe or max(1, nlist // 8), nlist))
    return p


def _factory_string(p: dict[str, Any]) -> str:
    t = p["type"]
    return {"flat": "Flat", "hnsw": f"HNSW{p.get('m')}", "ivf": f"IVF{p.get('nlist')},Flat",
            "pq": f"PQ{p.get('m')}x{p.get('nbits')}",
            "opq": f"OPQ{p.get('m')},PQ{p.get('m')}x{p.get('nbits')}",
            "ivfpq": f"IVF{p.get('nlist')},PQ{p.get('m')}x{p.get('nbits')}"}[t]


def _new_index(p: dict[str, Any], dim: int) -> Any:
    """An empty FAISS index of parameters ``p`` with its k-means seeded (``p["seed"]``)."""
    faiss, seed = _faiss(), int(p["seed"])
    idx = faiss.index_factory(dim, _factory_string(p), faiss.METRIC_INNER_PRODUCT)
    if p["type"] == "hnsw":
        idx.hnsw.efConstruction = int(p["ef_construction"])
    if p["type"] in ("ivf", "ivfpq"):
        faiss.extract_index_ivf(idx).cp.seed = seed
    # index_factory's IndexPQ runs polysemous training (a ~90 s simulated annealing that only reorders
    # codes for Hamming pre-filtering, which plain ADC search never uses): switched off.
    if p["type"] == "pq":
        idx.pq.cp.seed = seed
        idx.do_polysemous_training = False
    if p["type"] == "opq":
        inner = faiss.downcast_index(idx.index)
        inner.pq.cp.seed = seed
        inner.do_polysemous_training = False
    if p["type"] == "ivfpq":
        ivfpq = faiss.downcast_index(faiss.extract_index_ivf(idx))
        ivfpq.pq.cp.seed = seed
        ivfpq.do_polysemous_training = False
    return idx


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _apply_search_params(index: Any, p: dict[str, Any]) -> None:
    faiss = _faiss()
    if p["type"] == "hnsw":
        index.hnsw.efSearch = int(p["ef_search"])
    if p["type"] in ("ivf", "ivfpq"):
        faiss.extract_index_ivf(index).nprobe = int(p["nprobe"])


@contextlib.contextmanager
def _faiss_threads(threads: int) -> Iterator[None]:
    """FAISS's OpenMP threads for one build (0 = leave as is), restored afterwards."""
    faiss = _faiss()
    old = faiss.omp_get_max_threads()
    if threads:
        faiss.omp_set_num_threads(threads)
    try:
        yield
    finally:
        if threads:
            faiss.omp_set_num_threads(old)


class DenseIndex:
    """A FAISS index over unit vectors, its document ids, and the id of the encoder that made them."""

    def __init__(self, index: Any, docids: np.ndarray, encoder_id: str, params: dict[str, Any]) -> None:
        self.index = index
        self.docids = np.asarray(docids).astype(str)
        self.encoder_id = encoder_id
        self.params = dict(params)
        self._row: dict[str, int] | None = None
        self._direct_map = False

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @classmethod
    def build(cls, vectors: np.ndarray, docids, encoder_id: str, index: str = "flat", m: int | None = None,
              nbits: int = 8, nlist: int | None = None, nprobe: int | None = None, ef_search: int = 128,
              ef_construction: int = 200, seed: int = 0, threads: int = 0) -> DenseIndex:
        """Train (when the type needs it) and fill an index of ``vectors`` (``[n, d]`` float32)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        docids = np.asarray(list(docids)).astype(str)
        if vectors.ndim != 2 or len(vectors) == 0:
            raise InputError(f"dense: need a non-empty [n, d] matrix of vectors, got shape {vectors.shape}")
        if len(docids) != len(vectors):
            raise InputError(f"dense: {len(docids)} document ids for {len(vectors)} vectors")
        if len(set(docids.tolist())) != len(docids):
            raise InputError("dense: document ids are not unique", fix="give every document a unique id")
        p = _index_params(index, vectors.shape[1], len(vectors), m, nbits, nlist, nprobe, ef_search,
                          ef_construction)
        p["seed"] = int(seed)
        idx = _new_index(p, vectors.shape[1])
        with _faiss_threads(threads):
            if not idx.is_trained:
                log.info("training FAISS %s on %d vectors", _factory_string(p), len(vectors))
                idx.train(vectors)
            idx.add(vectors)
        _apply_search_params(idx, p)
        return cls(idx, docids, encoder_id, p)

    @classmethod
    def build_streaming(cls, chunks: Any, num_docs: int, encoder_id: str, index: str = "flat",
                        train_size: int | None = None, m: int | None = None, nbits: int = 8,
                        nlist: int | None = None, nprobe: int | None = None, ef_search: int = 128,
                        ef_construction: int = 200, seed: int = 0, threads: int = 0) -> DenseIndex:
        """An index filled from ``(vectors, docids)`` chunks, never holding the whole matrix. Trained types
        (ivf, pq, ivfpq) train on the first ``train_size`` vectors (default ``min(n, max(64 * nlist,
        9,984))``; FAISS wants >= 39 per centroid), then add chunk by chunk: equal to :meth:`build` for
        flat/hnsw, differing only by the training sample otherwise."""
        it, buffered, docids, have = iter(chunks), [], [], 0
        first = next(it, None)
        if first is None:
            raise InputError("dense: need a non-empty stream of vector chunks")
        dim = int(np.asarray(first[0]).shape[1])
        p = {**_index_params(index, dim, num_docs, m, nbits, nlist, nprobe, ef_search, ef_construction), "seed": seed}
        idx = _new_index(p, dim)
        need = 0 if idx.is_trained else min(num_docs, train_size or max(64 * p.get("nlist", 1), 9984))
        with _faiss_threads(threads):
            for vecs, ids in _chain(first, it):
                vecs = np.ascontiguousarray(vecs, dtype=np.float32)
                if len(ids) != len(vecs):
                    raise InputError(f"dense: {len(ids)} document ids for {len(vecs)} vectors")
                docids += [str(d) for d in ids]
                if not idx.is_trained:
                    buffered.append(vecs)
                    have += len(vecs)
                    if have < need:
                        continue
                    sample = np.concatenate(buffered)
                    log.info("training FAISS %s on %d vectors", _factory_string(p), min(need, len(sample)))
                    idx.train(sample[:need])
                    vecs, buffered = sample, []
                idx.add(vecs)
            if buffered:  # the stream ended before train_size vectors: train on all of them
                idx.train(sample := np.concatenate(buffered))
                idx.add(sample)
        if len(docids) != num_docs:
            raise InputError(f"dense: the stream held {len(docids)} documents, {num_docs} were announced")
        if len(set(docids)) != len(docids):
            raise InputError("dense: document ids are not unique", fix="give every document a unique id")
        _apply_search_params(idx, p)
        return cls(idx, np.array(docids), encoder_id, p)

    def check_encoder(self, encoder_id: str) -> None:
        """Refuse an encoder other than the one whose vectors fill the index."""
        if encoder_id != self.encoder_id:
            raise InputError(f"dense: this index holds vectors of encoder {self.encoder_id!r} but queries "
                             f"would be encoded by {encoder_id!r}; the scores would be meaningless",
                             fix="search with the encoder that built the index, or rebuild the index")

    def set_search(self, nprobe: int | None = None, ef_search: int | None = None) -> None:
        """Change query-time knobs (``nprobe`` for IVF types, ``ef_search`` for HNSW)."""
        if nprobe is not None and self.params["type"] in ("ivf", "ivfpq"):
            _positive_int("nprobe", nprobe)
            self.params["nprobe"] = min(nprobe, self.params["nlist"])
        if ef_search is not None and self.params["type"] == "hnsw":
            _positive_int("ef_search", ef_search)
            self.params["ef_search"] = ef_search
        _apply_search_params(self.index, self.params)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, rows) per query; rows of -1 mark missing results (k > reachable docs)."""
        _positive_int("k", k)
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise InputError(f"dense: query vectors have shape {q.shape}, the index has dimension {self.dim}")
        return self.index.search(q, min(k, len(self)))

    def vectors_of(self, docids) -> np.ndarray:
        """Stored (for PQ types: reconstructed, approximate) vectors of ``docids``."""
        faiss = _faiss()
        if self._row is None:
            self._row = {d: i for i, d in enumerate(self.docids.tolist())}
        rows = []
        for d in docids:
            if d not in self._row:
                raise InputError(f"dense: document {d!r} is not in the index",
                                 fix="the run and the index come from different collections")
            rows.append(self._row[d])
        if self.params["type"] in ("ivf", "ivfpq") and not self._direct_map:
            faiss.extract_index_ivf(self.index).make_direct_map()
            self._direct_map = True
        if not rows:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.index.reconstruct_batch(np.asarray(rows, dtype=np.int64))

    def nbytes(self) -> int:
        """Size of the serialised FAISS index in bytes (what memory and disk hold)."""
        return int(_faiss().serialize_index(self.index).nbytes)

    def save(self, path: str | Path, extra_params: dict[str, Any] | None = None, *, overwrite: bool = False,
             inputs: tuple[str | Path, ...] = (), write_extra: Callable[[Path], Any] | None = None) -> None:
        """Write ``index.faiss``, ``docids.json`` and a manifest pinning the encoder, atomically.

        ``overwrite`` replaces an existing dense index; ``inputs`` (e.g. the collection folder) may
        not be at, inside or around ``path`` (both checked by :func:`storage.atomic_directory`).
        ``write_extra(tmp)`` adds files (e.g. a JPQ index's query encoder) before the manifest
        checksums everything.
        """
        faiss = _faiss()
        with atomic_directory(path, overwrite=overwrite, inputs=inputs) as tmp:
            faiss.write_index(self.index, str(tmp / "index.faiss"))
            atomic_write_text(tmp / "docids.json", json.dumps(self.docids.tolist()))
            if write_extra is not None:
                write_extra(tmp)
            write_manifest(tmp, KIND, FORMAT_VERSION,
                           {**self.params, "encoder_id": self.encoder_id, "dim": self.dim,
                            "num_docs": len(self), **(extra_params or {})},
                           libraries=["faiss-cpu", "numpy"])

    @classmethod
    def load(cls, path: str | Path, verify: bool = True) -> tuple[DenseIndex, dict[str, Any]]:
        """The index and its manifest parameters; checks checksums and the document count."""
        faiss = _faiss()
        path = Path(path)
        manifest = read_manifest(path, KIND, (FORMAT_VERSION,), verify=verify)
        p = manifest["params"]
        idx = faiss.read_index(str(path / "index.faiss"))
        docids = json.loads((path / "docids.json").read_text("utf-8"))
        if not (len(docids) == idx.ntotal == p.get("num_docs")):
            raise InputError(f"index holds {idx.ntotal} vectors and {len(docids)} ids, manifest says "
                             f"{p.get('num_docs')}", path=path, fix="rebuild the index")
        keys = ("type", "m", "nbits", "nlist", "nprobe", "ef_search", "ef_construction", "seed",
                "bytes_per_vector")
        params = {k: p[k] for k in keys if k in p}
        out = cls(idx, np.array(docids), p["encoder_id"], params)
        _apply_search_params(idx, params)
        return out, p
