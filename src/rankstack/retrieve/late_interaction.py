"""End-to-end late-interaction retrieval: a token-level index with centroid codes, candidate generation by
centroid pruning, and exact MaxSim re-scoring.

Why (ColBERT, Khattab & Zaharia, SIGIR 2020): MaxSim over all documents is exact but touches every
stored token; ColBERT retrieves candidates with approximate nearest-neighbour search over token
vectors, then re-scores them exactly. We follow the centroid-based engine of PLAID ("PLAID: An
Efficient Engine for Late Interaction Retrieval", Santhanam et al., CIKM 2022):

1. k-means (FAISS) over the corpus' token vectors; every token gets the code of its nearest centroid.
2. *Candidate generation*: each query token probes its ``nprobe`` best centroids; documents holding a
   token in any probed centroid are candidates.
3. *Centroid interaction with pruning*: candidates are scored by MaxSim over their tokens' *centroid*
   scores (no vectors touched), with centroids whose best query score is below ``threshold`` counted
   as 0 (PLAID's centroid pruning); the best ``ndocs`` survive.
4. Exact MaxSim with the stored token vectors re-ranks them.

Unlike PLAID, token vectors are stored in fp16 (256 bytes per token at 128 dims), not as 1-2 bit
residuals: exact re-scoring, ~8x larger than PLAID's 2-bit codes. ``candidates="exhaustive"`` scores
every document exactly (the reference, and often faster on small corpora: see benchmarks/colbert.md).
Given a Run instead of Queries, the retriever scores exactly the input's documents (as BM25 and dense
do), so ``colbert`` is also a MaxSim reranker over any first stage.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.encode.colbert import ColBERTEncoder, cached_doc_states, maxsim_flat, project_states
from rankstack.errors import InputError, require
from rankstack.pipeline.stage import Stage, StageInput, queries_of
from rankstack.registry import Context, register
from rankstack.storage import atomic_directory, atomic_write_text, read_consistently, read_manifest, write_manifest
from rankstack.types import Run

__all__ = ["TokenStore", "ColBERTIndex", "ColBERTRetriever", "CANDIDATES", "KIND", "default_ncentroids", "gather_rows"]

log = logging.getLogger(__name__)

KIND = "colbert-index"
FORMAT_VERSION = 1
CANDIDATES = ("plaid", "exhaustive")


def default_ncentroids(num_tokens: int) -> int:
    """A power of two near 4*sqrt(tokens) (PLAID uses 16*sqrt; fewer cells keep k-means cheap on a CPU)."""
    return int(2 ** max(0, math.floor(math.log2(max(1.0, 4 * math.sqrt(num_tokens))))))


def gather_rows(offsets: np.ndarray, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Token rows of documents ``docs`` (concatenated) and the offsets of each document inside them."""
    starts, ends = offsets[docs], offsets[docs + 1]
    lengths = ends - starts
    sub = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    rows = np.repeat(starts - sub[:-1], lengths) + np.arange(sub[-1], dtype=np.int64)
    return rows, sub


class TokenStore:
    """Token vectors of a corpus, flat (``vectors [T, dim]``, document ``i`` at ``offsets[i]:offsets[i+1]``)."""

    def __init__(self, docids: Any, vectors: np.ndarray, offsets: np.ndarray, encoder_id: str) -> None:
        self.docids = np.asarray(list(docids)).astype(str)
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)  # fp32 in memory: BLAS has no fp16
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.encoder_id = encoder_id
        if len(self.offsets) != len(self.docids) + 1 or self.offsets[-1] != len(self.vectors):
            raise InputError(f"colbert: {len(self.docids)} documents but offsets/vectors do not match")
        self._row: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self.docids)

    @classmethod
    def from_collection(cls, encoder: ColBERTEncoder, collection: Any, cache_dir: str | Path | None = None,
                        progress: bool | None = None) -> TokenStore:
        docs = list(collection.corpus())
        if not docs:
            raise InputError("colbert: the collection has no documents", path=getattr(collection, "corpus_path", None))
        states, offsets = cached_doc_states(encoder, [d.contents for d in docs], [d.docid for d in docs],
                                            cache_dir, progress=progress)
        return cls([d.docid for d in docs], project_states(states, encoder.projection_weight()), offsets,
                   encoder.encoder_id)

    def check_encoder(self, encoder_id: str) -> None:
        if encoder_id != self.encoder_id:
            raise InputError(f"colbert: this index holds token vectors of encoder {self.encoder_id!r} but "
                             f"queries would be encoded by {encoder_id!r}; MaxSim would be meaningless",
                             fix="use the model that built the index, or rebuild the index")

    def rows_of(self, docids: Any) -> np.ndarray:
        if self._row is None:
            self._row = {d: i for i, d in enumerate(self.docids.tolist())}
        out = np.empty(len(docids), dtype=np.int64)
        for i, d in enumerate(docids):
            r = self._row.get(str(d))
            if r is None:
                raise InputError(f"colbert: document {d!r} is not in the index",
                                 fix="the run and the index come from different collections")
            out[i] = r
        return out

    def score_docs(self, q: np.ndarray, docs: np.ndarray) -> np.ndarray:
        """Exact MaxSim of one query ``[Lq, dim]`` against documents (row numbers) ``docs``."""
        if len(docs) == 0:
            return np.zeros(0)
        rows, sub = gather_rows(self.offsets, docs)
        return maxsim_flat(q, self.vectors[rows], sub)

    def score_all(self, q: np.ndarray) -> np.ndarray:
        return maxsim_flat(q, self.vectors, self.offsets)

    def nbytes(self) -> int:
        """Bytes of the stored (fp16) token vectors and offsets."""
        return int(self.vectors.shape[0] * self.vectors.shape[1] * 2 + self.offsets.nbytes)


class ColBERTIndex(TokenStore):
    """A :class:`TokenStore` with k-means centroids and per-token centroid codes (PLAID-style)."""

    def __init__(self, docids: Any, vectors: np.ndarray, offsets: np.ndarray, encoder_id: str,
                 centroids: np.ndarray, codes: np.ndarray, params: dict[str, Any]) -> None:
        super().__init__(docids, vectors, offsets, encoder_id)
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        self.codes = np.asarray(codes, dtype=np.int32)
        self.params = dict(params)
        if len(self.codes) != len(self.vectors):
            raise InputError("colbert: one centroid code per token is required")
        # centroid -> documents (CSR), for candidate generation
        doc_of_token = np.repeat(np.arange(len(self.docids), dtype=np.int64), np.diff(self.offsets))
        pairs = np.unique(self.codes.astype(np.int64) * len(self.docids) + doc_of_token)
        cells = pairs // max(1, len(self.docids))
        self.cell_docs = (pairs % max(1, len(self.docids))).astype(np.int64)
        self.cell_ptr = np.searchsorted(cells, np.arange(len(self.centroids) + 1)).astype(np.int64)

    @classmethod
    def build(cls, store: TokenStore, ncentroids: int | None = None, seed: int = 0, niter: int = 10,
              max_points_per_centroid: int = 64) -> ColBERTIndex:
        """k-means over (a sample of) the token vectors, then every token's nearest centroid."""
        faiss = require("faiss", "dense", "ColBERT centroid indexes")
        n_tok = len(store.vectors)
        if n_tok == 0:
            raise InputError("colbert: the corpus has no tokens to index")
        k = ncentroids or default_ncentroids(n_tok)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InputError(f"colbert: ncentroids must be a positive integer, got {ncentroids!r}")
        k = min(k, n_tok)
        start = time.perf_counter()
        km = faiss.Kmeans(store.vectors.shape[1], k, niter=niter, seed=seed, spherical=True,
                          max_points_per_centroid=max_points_per_centroid, verbose=False)
        rng = np.random.default_rng(seed)
        sample = store.vectors if n_tok <= k * max_points_per_centroid else \
            store.vectors[np.sort(rng.choice(n_tok, size=k * max_points_per_centroid, replace=False))]
        km.train(np.ascontiguousarray(sample))
        quantizer = faiss.IndexFlatIP(store.vectors.shape[1])
        quantizer.add(km.centroids)
        codes = np.empty(n_tok, dtype=np.int32)
        for s in range(0, n_tok, 1 << 18):
            codes[s:s + (1 << 18)] = quantizer.search(store.vectors[s:s + (1 << 18)], 1)[1][:, 0]
        log.info("colbert: %d centroids over %d tokens in %.1fs", k, n_tok, time.perf_counter() - start)
        return cls(store.docids, store.vectors, store.offsets, store.encoder_id, km.centroids, codes,
                   {"ncentroids": k, "seed": seed, "niter": niter})

    def candidates(self, q: np.ndarray, nprobe: int, ndocs: int, threshold: float) -> np.ndarray:
        """PLAID stages 1-3: probed centroids -> candidate documents -> centroid-interaction top ``ndocs``."""
        s = q @ self.centroids.T  # [Lq, C]
        nprobe = min(nprobe, s.shape[1])
        probe = np.unique(np.argpartition(-s, nprobe - 1, axis=1)[:, :nprobe])
        docs = np.unique(np.concatenate([self.cell_docs[self.cell_ptr[c]:self.cell_ptr[c + 1]] for c in probe]))
        if len(docs) <= ndocs:
            return docs
        pruned = np.where(s.max(axis=0, keepdims=True) >= threshold, s, 0.0).astype(np.float32)
        rows, sub = gather_rows(self.offsets, docs)
        approx = np.maximum.reduceat(pruned[:, self.codes[rows]], sub[:-1], axis=1).sum(axis=0)
        keep = np.argpartition(-approx, ndocs - 1)[:ndocs]
        return docs[np.sort(keep)]

    def nbytes(self) -> int:
        return int(super().nbytes() + self.centroids.nbytes + self.codes.nbytes)

    # persistence ---------------------------------------------------------------------------
    def save(self, path: str | Path, extra_params: dict[str, Any] | None = None, *, overwrite: bool = False,
             inputs: tuple = ()) -> None:
        """``vectors.npy`` (fp16), ``offsets.npy``, ``codes.npy``, ``centroids.npy``, ``docids.json`` and a
        manifest pinning the encoder id, written as one atomic folder."""
        with atomic_directory(path, overwrite=overwrite, inputs=inputs) as tmp:
            np.save(tmp / "vectors.npy", self.vectors.astype(np.float16), allow_pickle=False)
            np.save(tmp / "offsets.npy", self.offsets, allow_pickle=False)
            np.save(tmp / "codes.npy", self.codes, allow_pickle=False)
            np.save(tmp / "centroids.npy", self.centroids, allow_pickle=False)
            atomic_write_text(tmp / "docids.json", json.dumps(self.docids.tolist()))
            write_manifest(tmp, KIND, FORMAT_VERSION,
                           {**self.params, **(extra_params or {}), "encoder_id": self.encoder_id,
                            "num_docs": len(self), "num_tokens": int(len(self.vectors)),
                            "dim": int(self.vectors.shape[1])}, libraries=["faiss-cpu", "numpy"])

    @classmethod
    def load(cls, path: str | Path, verify: bool = True) -> tuple[ColBERTIndex, dict[str, Any]]:
        path = Path(path)
        return read_consistently(path, lambda: cls._load(path, verify))

    @classmethod
    def _load(cls, path: Path, verify: bool) -> tuple[ColBERTIndex, dict[str, Any]]:
        p = read_manifest(path, KIND, (FORMAT_VERSION,), verify=verify)["params"]
        arrays = {n: np.load(path / f"{n}.npy", allow_pickle=False) for n in ("vectors", "offsets", "codes", "centroids")}
        docids = json.loads((path / "docids.json").read_text("utf-8"))
        if not (len(docids) == p.get("num_docs") == len(arrays["offsets"]) - 1) or \
                len(arrays["vectors"]) != p.get("num_tokens"):
            raise InputError("colbert index files disagree with the manifest", path=path, fix="rebuild the index")
        params = {k: p[k] for k in ("ncentroids", "seed", "niter") if k in p}
        return cls(docids, arrays["vectors"], arrays["offsets"], p["encoder_id"], arrays["centroids"],
                   arrays["codes"], params), p


class ColBERTRetriever(Stage):
    """Queries -> Run by late interaction; a Run input is re-scored on exactly its documents.

    ``candidates``: ``"plaid"`` (centroid probing and pruning, then exact MaxSim on ``ndocs``) or
    ``"exhaustive"`` (exact MaxSim over every document).
    """

    def __init__(self, encoder: ColBERTEncoder, index: ColBERTIndex, k: int = 1000, candidates: str = "plaid",
                 nprobe: int = 4, ndocs: int = 1024, threshold: float = 0.4, model_spec: str | None = None) -> None:
        for name, v in (("k", k), ("nprobe", nprobe), ("ndocs", ndocs)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"colbert: {name} must be a positive integer, got {v!r}")
        if candidates not in CANDIDATES:
            raise InputError(f"colbert: unknown candidates {candidates!r}", fix=f"choose one of {', '.join(CANDIDATES)}")
        index.check_encoder(encoder.encoder_id)
        self.encoder, self.index, self.k = encoder, index, k
        self.candidates, self.nprobe, self.ndocs, self.threshold = candidates, nprobe, ndocs, float(threshold)
        self.model_spec = model_spec
        self.name = "colbert"
        self.last_stats: dict[str, Any] = {}

    def at_least(self, k: int) -> ColBERTRetriever:
        if k <= self.k:
            return self
        import copy

        other = copy.copy(self)
        other.k = k
        return other

    def search(self, qvecs: np.ndarray, k: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Top-``k`` (docids, scores) per query vector matrix, in canonical order."""
        k = min(k or self.k, len(self.index))
        out, n_cand = [], 0
        for q in qvecs:
            if self.candidates == "exhaustive":
                docs = np.arange(len(self.index))
                scores = self.index.score_all(q)
            else:
                docs = self.index.candidates(q, self.nprobe, max(self.ndocs, k), self.threshold)
                scores = self.index.score_docs(q, docs)
            n_cand += len(docs)
            out.append(_top(self.index.docids[docs], scores, k))
        self.last_stats = {"mean_candidates": n_cand / max(1, len(qvecs))}
        return out

    def transform(self, inp: StageInput) -> Run:
        queries = queries_of(inp, "colbert")
        qvecs = self.encoder.encode_queries(list(queries.texts))
        if isinstance(inp, Run):  # restrict to (and exactly score) the input's documents
            qpos = {q: i for i, q in enumerate(queries.qids)}
            scores = np.empty(len(inp), dtype=np.float64)
            rows = self.index.rows_of(inp.docids.tolist())
            qids = inp.qids.tolist()
            starts = [0] + [i for i in range(1, len(qids)) if qids[i] != qids[i - 1]] + [len(qids)]
            for a, b in zip(starts[:-1], starts[1:]):
                scores[a:b] = self.index.score_docs(qvecs[qpos[qids[a]]], rows[a:b])
            return inp.replace(scores=scores, name="colbert")
        results = self.search(qvecs)
        sizes = [len(r[0]) for r in results]
        qids = np.repeat(np.asarray(queries.qids, dtype=str), sizes)
        docids = np.concatenate([r[0] for r in results]) if results else np.array([], dtype=str)
        scores = np.concatenate([r[1] for r in results]) if results else np.array([])
        return Run(qids, docids, scores, name="colbert", queries=queries)

    def save(self, path: str | Path, *, overwrite: bool = False, inputs: tuple = ()) -> None:
        self.index.save(path, extra_params={"model": self.model_spec, "encoder": self.encoder.describe()},
                        overwrite=overwrite, inputs=inputs)

    @classmethod
    def load(cls, path: str | Path, model: str | ColBERTEncoder | None = None, **options: Any) -> ColBERTRetriever:
        """Load a saved index; the model defaults to the one recorded in its manifest (refused if another)."""
        index, p = ColBERTIndex.load(path)
        spec = model if model is not None else p.get("model")
        if spec is None:
            raise InputError("the colbert index records no model", path=path, fix="pass model=FOLDER")
        enc_opts = {k: options.pop(k) for k in ("threads", "batch_size", "seed") if k in options}
        if isinstance(spec, ColBERTEncoder):
            encoder = spec
        else:
            encoder = ColBERTEncoder(spec, **{"seed": (p.get("encoder") or {}).get("seed", 0), **enc_opts})
        return cls(encoder, index, model_spec=spec if isinstance(spec, str) else None, **options)


def _top(docids: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    _, code = np.unique(docids, return_inverse=True)
    order = np.lexsort((-code, -scores))[:k]  # trec_eval order: score descending, ties by docid descending
    return docids[order], scores[order].astype(np.float64)


def _index_cache_key(encoder: ColBERTEncoder, collection: Any, ncentroids: int | None, seed: int) -> str:
    from rankstack.storage import fingerprint

    raw = json.dumps({"encoder": encoder.encoder_id, "corpus": fingerprint(collection.corpus_path),
                      "ncentroids": ncentroids, "seed": seed, "format": FORMAT_VERSION}, sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


@register("colbert", kind="retriever")
def build_colbert(context: Context | None = None, model: str = "minilm", index: str | None = None, k: int = 1000,
                  candidates: str = "plaid", nprobe: int = 4, ndocs: int = 1024, threshold: float = 0.4,
                  ncentroids: int | None = None, threads: int | None = None, batch_size: int = 32,
                  seed: int = 0, query_maxlen: int = 32, doc_maxlen: int = 180) -> ColBERTRetriever:
    """Late-interaction retrieval over the context's collection (token states and the index cached in the
    context's cache folder) or over a saved ``index`` folder: ``colbert(model='DIR') % 100``."""
    opts = {"k": k, "candidates": candidates, "nprobe": nprobe, "ndocs": ndocs, "threshold": threshold}
    if index is not None:
        return ColBERTRetriever.load(index, model=None if model == "minilm" else model, threads=threads,
                                     batch_size=batch_size, **opts)
    if context is None or context.collection is None:
        raise InputError("colbert needs a collection or a saved index", fix="pass --collection or index=FOLDER")
    encoder = ColBERTEncoder(model, threads=threads, batch_size=batch_size, seed=seed, query_maxlen=query_maxlen,
                             doc_maxlen=doc_maxlen)  # lengths: for a base model; a saved model keeps its own
    coll = context.collection
    where = None
    if context.cache_dir is not None:
        where = Path(context.cache_dir) / "colbert" / f"index-{_index_cache_key(encoder, coll, ncentroids, seed)}"
        if where.is_dir():
            try:
                return ColBERTRetriever.load(where, model=encoder, **opts)
            except InputError as exc:
                log.warning("ignoring unreadable cached colbert index %s: %s", where, exc)
    store = TokenStore.from_collection(encoder, coll, context.cache_dir)
    retriever = ColBERTRetriever(encoder, ColBERTIndex.build(store, ncentroids=ncentroids, seed=seed),
                                 model_spec=str(model), **opts)
    if where is not None:
        retriever.save(where, overwrite=True)
    return retriever
