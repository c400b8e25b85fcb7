"""Dense first stage: an :class:`~rankstack.encode.base.Encoder` over a FAISS vector index.

Queries are encoded and searched in a :class:`~rankstack.retrieve.dense_index.DenseIndex` (FAISS:
flat, HNSW, IVF, PQ, OPQ, IVF-PQ; parameters and the saved format live in ``dense_index``). A saved
index may also be a JPQ index (:mod:`rankstack.retrieve.jpq`: PQ centroids trained for ranking) whose
manifest names its own (possibly trained) query encoder folder, stored inside the index folder.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.data.beir import Collection
from rankstack.encode.base import Encoder, cached_encode, load_encoder
from rankstack.errors import InputError
from rankstack.pipeline.stage import Stage, StageInput, queries_of
from rankstack.registry import Context, register
from rankstack.retrieve.dense_index import INDEX_TYPES, DenseIndex, _positive_int, default_nlist
from rankstack.types import Run

__all__ = ["DenseIndex", "DenseRetriever", "INDEX_TYPES", "default_nlist"]

class DenseRetriever(Stage):
    """Encode queries, search the index, return a Run (Karpukhin et al., "Dense Passage Retrieval", 2020).

    Given a Run instead of Queries it acts as a reranker: the input documents are scored by inner
    product with their stored vectors (exact for flat/hnsw/ivf, approximate for PQ types).
    """

    def __init__(self, encoder: Encoder, index: DenseIndex, k: int = 1000, encoder_spec: str | None = None,
                 cache_dir: str | Path | None = None) -> None:
        _positive_int("k", k)
        index.check_encoder(encoder.encoder_id)
        self.encoder, self.index, self.k = encoder, index, k
        self.encoder_spec = encoder_spec
        self.cache_dir = cache_dir  # when set, query embeddings are cached too (experiments re-run them)
        self.name = "dense"

    @classmethod
    def from_collection(cls, collection: Collection | str | Path, encoder: str | Encoder = "minilm",
                        index: str = "flat", cache_dir: str | Path | None = None, k: int = 1000,
                        seed: int = 0, threads: int = 0, precision: str = "auto", batch_size: int = 32,
                        max_length: int | None = None, executor: Any = None, chunk_size: int | None = None,
                        **index_args: Any) -> DenseRetriever:
        """Encode the collection (cached under ``cache_dir``) and build an index of type ``index``.

        ``executor``: anything with ``encode(spec, texts, ids, batch_size, options)`` (rankstack.engine,
        e.g. Ray workers; same vectors bit for bit; ``encoder`` must be a spec). ``chunk_size``: encode
        and index chunk by chunk (each chunk cached on its own): memory holds one chunk, not the matrix.
        """
        coll = collection if isinstance(collection, Collection) else Collection(collection)
        enc = load_encoder(encoder, precision=precision, threads=threads or None, batch_size=batch_size,
                           max_length=max_length)
        encode_fn = None
        if executor is not None:
            if not isinstance(encoder, str):
                raise InputError("dense: distributed encoding needs the encoder as a spec (a name or a folder)")
            opts = {"precision": enc.precision, "max_length": max_length}  # resolved: same on every node
            encode_fn = lambda texts, ids: executor.encode(encoder, texts, ids, batch_size, opts)  # noqa: E731
        if chunk_size is not None:
            num_docs = sum(1 for _ in coll.corpus())
            chunks = ((cached_encode(enc, [d.contents for d in c], [d.docid for d in c], cache_dir,
                                     encode_fn=encode_fn), [d.docid for d in c])
                      for c in coll.corpus_chunks(chunk_size))
            idx = DenseIndex.build_streaming(chunks, num_docs, enc.encoder_id, index=index, seed=seed,
                                             threads=threads, **index_args)
            return cls(enc, idx, k=k, encoder_spec=encoder if isinstance(encoder, str) else None, cache_dir=cache_dir)
        docs = list(coll.corpus())
        if not docs:
            raise InputError("dense: the collection has no documents", path=coll.corpus_path)
        vectors = cached_encode(enc, [d.contents for d in docs], [d.docid for d in docs], cache_dir,
                                encode_fn=encode_fn)
        idx = DenseIndex.build(vectors, [d.docid for d in docs], enc.encoder_id, index=index, seed=seed,
                               threads=threads, **index_args)
        spec = encoder if isinstance(encoder, str) else None
        return cls(enc, idx, k=k, encoder_spec=spec, cache_dir=cache_dir)

    def at_least(self, k: int) -> DenseRetriever:
        """A copy that retrieves at least ``k`` per query (``dense % 5000`` is not capped by k=1000).

        The copy shares the encoder and index (nothing is re-encoded); ``self`` is never changed.
        """
        _positive_int("k", k)
        if k <= self.k:
            return self
        other = copy.copy(self)
        other.k = k
        return other

    def transform(self, inp: StageInput) -> Run:
        queries = queries_of(inp, "dense")
        qvecs = cached_encode(self.encoder, list(queries.texts), list(queries.qids), self.cache_dir,
                              progress=False)
        if isinstance(inp, Run):
            return self._rerank(inp, qvecs)
        scores, rows = self.index.search(qvecs, self.k)
        keep = rows >= 0
        qids = np.repeat(np.asarray(queries.qids, dtype=str), keep.sum(axis=1))
        return Run(qids, self.index.docids[rows[keep]], scores[keep].astype(np.float64), name="dense",
                   queries=queries)

    def _rerank(self, run: Run, qvecs: np.ndarray) -> Run:
        qpos = {q: i for i, q in enumerate(run.queries.qids)}
        vecs = self.index.vectors_of(run.docids.tolist())
        qi = np.array([qpos[q] for q in run.qids.tolist()], dtype=np.int64)
        scores = np.einsum("ij,ij->i", vecs, qvecs[qi]).astype(np.float64)
        return run.replace(scores=scores, name="dense")

    def save(self, path: str | Path, *, overwrite: bool = False, inputs: tuple[str | Path, ...] = ()) -> None:
        """Save the index with the encoder's id (and spec, so ``load`` can rebuild the encoder).

        ``overwrite``: replace an existing dense index; ``inputs``: folders the save must stay out of.
        """
        self.index.save(path, extra_params={"encoder_spec": self.encoder_spec,
                                            "encoder_backend": self.encoder.backend,
                                            "precision": self.encoder.precision},
                        overwrite=overwrite, inputs=inputs)

    @classmethod
    def load(cls, path: str | Path, encoder: str | Encoder | None = None, k: int = 1000,
             precision: str = "auto", threads: int = 0, batch_size: int = 32, nprobe: int | None = None,
             ef_search: int | None = None) -> DenseRetriever:
        """Load a saved index; the encoder defaults to the one recorded in its manifest."""
        idx, p = DenseIndex.load(path)
        spec = encoder if encoder is not None else p.get("encoder_spec")
        if spec is None:
            raise InputError("the index manifest records no encoder spec", path=path,
                             fix=f"pass the encoder that built it (id {p['encoder_id']!r})")
        spec = _inside(Path(path), spec)
        enc = load_encoder(spec, precision=precision, batch_size=batch_size, threads=threads or None)
        idx.set_search(nprobe=nprobe, ef_search=ef_search)
        return cls(enc, idx, k=k, encoder_spec=spec if isinstance(spec, str) else None)


def _inside(folder: Path, spec: Any) -> Any:
    """A relative encoder spec naming a folder inside the index folder (a JPQ index's trained query
    encoder, ``query_encoder``) resolves there; registered names and other specs are unchanged."""
    from rankstack.registry import names

    if isinstance(spec, str) and spec not in names("encoder") and not Path(spec).is_absolute() \
            and (folder / spec).is_dir():
        return str(folder / spec)
    return spec


@register("dense", kind="retriever")
def build_dense(context: Context | None = None, encoder: str = "minilm", index: str = "flat",
                m: int | None = None, nbits: int = 8, nlist: int | None = None, nprobe: int | None = None,
                ef_search: int = 128, ef_construction: int = 200, precision: str = "auto",
                batch_size: int = 32, threads: int = 0, max_length: int | None = None,
                k: int = 1000, chunk_size: int | None = None) -> DenseRetriever:
    """Dense retrieval over the context's collection (embeddings cached in the context's cache folder),
    or over a saved index when ``index`` is a folder path instead of a type name. The corpus is
    encoded by ``context.extras["executor"]`` when set (rankstack.engine: local or Ray)."""
    if index not in INDEX_TYPES and Path(str(index)).is_dir():
        return DenseRetriever.load(index, encoder=None if encoder == "minilm" else encoder, k=k,
                                   precision=precision, threads=threads, batch_size=batch_size,
                                   nprobe=nprobe, ef_search=ef_search if ef_search != 128 else None)
    if index not in INDEX_TYPES:
        raise InputError(f"dense: index {index!r} is neither a type ({', '.join(INDEX_TYPES)}) nor a "
                         "saved index folder", fix="pass a type name or the folder of a saved index")
    if context is None or context.collection is None:
        raise InputError("dense needs a collection or a saved index", fix="pass --collection or index=FOLDER")
    return DenseRetriever.from_collection(context.collection, encoder=encoder, index=index,
                                          cache_dir=context.cache_dir, k=k, seed=context.seed,
                                          threads=threads, precision=precision, batch_size=batch_size,
                                          max_length=max_length, executor=context.extras.get("executor"),
                                          chunk_size=chunk_size, m=m, nbits=nbits, nlist=nlist,
                                          nprobe=nprobe, ef_search=ef_search, ef_construction=ef_construction)
