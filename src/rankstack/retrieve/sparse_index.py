"""A term-impact inverted index over a model vocabulary, as a scipy.sparse matrix.

Why scipy.sparse and not a Lucene impact index (Pyserini/Anserini) or PISA: none of those installs
offline here (Pyserini needs a JVM and downloads, PISA has no wheel), and a CSC matrix ``[docs,
vocab]`` *is* an inverted index: column ``t``'s slice is term ``t``'s posting list (document rows and
impacts). Scoring a batch of queries is one sparse product ``Q [b, V] @ D.T [V, n]`` that touches only
the posting lists of the query terms (term-at-a-time accumulation in C++). Query batches run on a
thread pool; scipy's sparse kernels run in compiled code, so threads help as far as they release the
GIL (measured in benchmarks/sparse.md rather than assumed).

Impacts are stored as float32, not quantised: at these collection sizes an index is a few MB (8
bytes per posting with the int32 row index), and 8-bit quantisation (as Anserini's impact indexes
do) would add a tuning knob for no measured gain here.

A saved index records the encoder that filled it (model fingerprint, vocabulary hash, max length,
pruning) in its manifest; a retriever with another vocabulary or model is refused with a clear
message, and a tampered file fails the manifest's checksums.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.errors import InputError
from rankstack.storage import atomic_directory, atomic_write_text, read_consistently, read_manifest, write_manifest

__all__ = ["SparseIndex", "KIND", "FORMAT_VERSION"]

KIND = "sparse-index"
FORMAT_VERSION = 1


def _sp():
    from rankstack.errors import require

    return require("scipy.sparse", "sparse", "sparse (SPLADE) indexes")


class SparseIndex:
    """Document impacts ``[n_docs, vocab]`` (stored CSC: one posting list per term), ids, idf, encoder."""

    def __init__(self, matrix: Any, docids: Sequence[str], encoder: dict[str, Any],
                 idf: np.ndarray | None = None) -> None:
        sp = _sp()
        self.docids = np.asarray(list(docids)).astype(str)
        if matrix.shape[0] != len(self.docids):
            raise InputError(f"sparse index: {matrix.shape[0]} rows for {len(self.docids)} document ids")
        self.matrix = sp.csc_matrix(matrix, dtype=np.float32)
        self.matrix.sort_indices()
        self._by_term = self.matrix.T.tocsr()  # [V, n]: row t = posting list of term t (for Q @ D.T)
        self.encoder = dict(encoder)
        self.idf = None if idf is None else np.asarray(idf, dtype=np.float32)
        if self.idf is not None and self.idf.shape != (self.matrix.shape[1],):
            raise InputError(f"sparse index: idf has shape {self.idf.shape}, vocabulary is {self.matrix.shape[1]}")
        rank = np.empty(len(self.docids), dtype=np.int64)
        rank[np.argsort(self.docids, kind="stable")] = np.arange(len(self.docids))
        self._doc_rank = rank
        self._row: dict[str, int] | None = None

    @classmethod
    def build(cls, matrix: Any, docids: Sequence[str], encoder: dict[str, Any],
              idf: np.ndarray | None = None) -> SparseIndex:
        """Check and wrap document vectors (CSR/CSC ``[n, vocab]``, non-negative impacts)."""
        docids = [str(d) for d in docids]
        if not docids:
            raise InputError("sparse index: cannot index an empty corpus")
        if len(set(docids)) != len(docids):
            raise InputError("sparse index: document ids are not unique", fix="give every document a unique id")
        if matrix.nnz == 0:
            raise InputError(f"sparse index: none of the {len(docids)} documents has a term (all are empty?)",
                             fix="check the corpus' title/text fields")
        data = matrix.data
        if not np.all(np.isfinite(data)) or (data < 0).any():
            raise InputError("sparse index: impacts must be finite and non-negative")
        return cls(matrix, docids, encoder, idf)

    def __len__(self) -> int:
        return len(self.docids)

    @property
    def vocab_size(self) -> int:
        return int(self.matrix.shape[1])

    def nbytes(self) -> int:
        """Bytes of the posting lists (impacts + row ids + column pointers)."""
        m = self.matrix
        return int(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes)

    def terms_per_doc(self) -> np.ndarray:
        return np.diff(self.matrix.tocsr().indptr)

    def check_encoder(self, describe: dict[str, Any], need_model: bool = True) -> None:
        """Refuse queries made with another vocabulary (always) or another model (when it encodes queries)."""
        mine, theirs = self.encoder.get("vocab_hash"), describe.get("vocab_hash")
        if mine != theirs:
            raise InputError(f"sparse: this index was built with vocabulary {mine!r} (model "
                             f"{self.encoder.get('model')!r}) but the queries would use vocabulary {theirs!r} "
                             f"(model {describe.get('model')!r}); term ids would not match",
                             fix="search with the model that built the index, or rebuild the index")
        if need_model and self.encoder.get("fingerprint") != describe.get("fingerprint"):
            raise InputError(f"sparse: this index holds expansions of model {self.encoder.get('fingerprint')!r} but "
                             f"queries would be encoded by model {describe.get('fingerprint')!r}",
                             fix="search with the model that built the index, or rebuild the index")

    # ------------------------------------------------------------------------------------- search
    def _score_block(self, queries: Any) -> np.ndarray:
        return (queries @ self._by_term).toarray()

    def search(self, queries: Any, k: int, threads: int = 0, block: int = 64) -> list[tuple[np.ndarray, np.ndarray]]:
        """Top-``k`` (docids, scores) per query row of a CSR ``[m, vocab]``; only scores > 0; trec_eval ties.

        Documents tied with the k-th score stay candidates until the docid tie-break (descending
        docid, as trec_eval orders a run), so the cut is deterministic.
        """
        sp = _sp()
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InputError(f"sparse: k must be a positive integer, got {k!r}")
        q = sp.csr_matrix(queries, dtype=np.float32)
        if q.shape[1] != self.vocab_size:
            raise InputError(f"sparse: queries have {q.shape[1]} terms, the index vocabulary has {self.vocab_size}")
        k = min(k, len(self))
        starts = list(range(0, q.shape[0], block))
        n_threads = threads or min(len(starts), os.cpu_count() or 1)

        def run(s: int) -> list[tuple[np.ndarray, np.ndarray]]:
            scores = self._score_block(q[s:s + block])
            return [self._top(row, k) for row in scores]

        if n_threads > 1 and len(starts) > 1:
            with ThreadPoolExecutor(n_threads) as pool:
                parts = list(pool.map(run, starts))
        else:
            parts = [run(s) for s in starts]
        return [r for part in parts for r in part]

    def _top(self, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        cand = np.flatnonzero(scores > 0)
        if len(cand) > k:
            kth = np.partition(scores[cand], len(cand) - k)[len(cand) - k]
            cand = cand[scores[cand] >= kth]
        order = np.lexsort((-self._doc_rank[cand], -scores[cand]))[:k]
        return self.docids[cand[order]], scores[cand[order]].astype(np.float64)

    def score_pairs(self, queries: Any, query_rows: np.ndarray, docids: Sequence[str]) -> np.ndarray:
        """Scores of (query row, document) pairs: the dot products a reranker stage needs."""
        if self._row is None:
            self._row = {d: i for i, d in enumerate(self.docids.tolist())}
        rows = []
        for d in docids:
            if d not in self._row:
                raise InputError(f"sparse: document {d!r} is not in the index",
                                 fix="the run and the index come from different collections")
            rows.append(self._row[d])
        if not rows:
            return np.zeros(0)
        docs = self.matrix.tocsr()[np.asarray(rows)]
        qs = queries.tocsr()[np.asarray(query_rows)]
        return np.asarray(docs.multiply(qs).sum(axis=1)).ravel().astype(np.float64)

    # ------------------------------------------------------------------------------------- persistence
    def save(self, path: str | Path, *, overwrite: bool = False, inputs: Sequence[str | Path] = ()) -> dict:
        """``impacts.npz`` (CSC, no pickle), ``docids.json``, ``idf.npy`` and a manifest pinning the encoder."""
        sp = _sp()
        with atomic_directory(path, overwrite=overwrite, inputs=inputs) as tmp:
            sp.save_npz(tmp / "impacts.npz", self.matrix, compressed=False)
            atomic_write_text(tmp / "docids.json", json.dumps(self.docids.tolist()))
            if self.idf is not None:
                np.save(tmp / "idf.npy", self.idf, allow_pickle=False)
            return write_manifest(tmp, KIND, FORMAT_VERSION,
                                  {"encoder": self.encoder, "num_docs": len(self), "vocab_size": self.vocab_size,
                                   "postings": int(self.matrix.nnz), "impacts": "float32"},
                                  libraries=["scipy", "numpy"])

    @classmethod
    def load(cls, path: str | Path, verify: bool = True) -> SparseIndex:
        """Load and verify (checksums, document count, vocabulary size) a saved index."""
        path = Path(path)
        return read_consistently(path, lambda: cls._load(path, verify))

    @classmethod
    def _load(cls, path: Path, verify: bool) -> SparseIndex:
        sp = _sp()
        manifest = read_manifest(path, KIND, (FORMAT_VERSION,), verify=verify)
        p = manifest["params"]
        try:
            matrix = sp.load_npz(path / "impacts.npz")
            docids = json.loads((path / "docids.json").read_text("utf-8"))
            idf = np.load(path / "idf.npy", allow_pickle=False) if (path / "idf.npy").is_file() else None
            encoder = dict(p["encoder"])
            expected = (int(p["num_docs"]), int(p["vocab_size"]))
        except (KeyError, TypeError, ValueError, OSError) as exc:
            raise InputError(f"sparse index is incomplete or invalid ({exc})", path=path,
                             fix="rebuild the index") from None
        if not isinstance(docids, list) or (len(docids), matrix.shape[1]) != expected or matrix.shape[0] != len(docids):
            raise InputError(f"sparse index holds {matrix.shape} impacts for {len(docids)} ids; manifest says "
                             f"{expected}", path=path, fix="rebuild the index")
        return cls(matrix, docids, encoder, idf)
