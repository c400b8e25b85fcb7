"""The offline half of CUR search: cross-encoder scores of a few anchor queries against every item.

Why: "Efficient Nearest Neighbor Search for Cross-Encoder Models using Matrix Factorization" (Yadav
et al., EMNLP 2022, ANNCUR) and its adaptive follow-up ADACUR ("Efficient k-NN Search with
Cross-Encoders using Adaptive Multi-Round CUR Decomposition", Yadav et al., Findings of ACL 2023)
approximate a test query's cross-encoder scores on all items from the scores of ``k_q`` anchor
queries on all items (the matrix ``R``, ``k_q x N``), computed once offline. That matrix is the only
index the method needs; it is an artefact here: ``scores.npy`` (float32, no pickle), the item ids and
anchor queries as JSON, and a checksummed manifest recording which cross-encoder computed it (a
content fingerprint of the model folder, its max length and precision), so an index is never
silently combined with a different model. Hand-written because no library builds or stores such a
matrix; the numbers come from the rankstack cross-encoder (``PairScorer.score``), not a copy of it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.errors import InputError
from rankstack.rerank.base import require_bare_pairs
from rankstack.storage import atomic_directory, read_manifest, write_manifest
from rankstack.types import Queries

__all__ = ["AnchorIndex", "scorer_identity", "KIND", "FORMAT_VERSION"]

log = logging.getLogger(__name__)

KIND = "cur-anchor-index"
FORMAT_VERSION = 1


def scorer_identity(scorer: Any) -> str:
    """A string naming the exact scoring function: model content, max length (precision is recorded
    apart: bf16 and fp32 scores of one model correlate > 0.9999 and may share an index)."""
    path = getattr(scorer, "model_path", None)
    ident = getattr(scorer, "identity", None)
    if isinstance(ident, str):
        return ident
    if path is not None:
        from rankstack.rerank.cross_encoder import base_model_path
        from rankstack.storage import fingerprint

        try:
            content = fingerprint(base_model_path(path))
        except InputError:
            content = str(path)
        return f"cross-encoder:{content[:16]}:len{getattr(scorer, 'max_length', None)}"
    return f"{type(scorer).__name__}"


@dataclass(frozen=True, eq=False)
class AnchorIndex:
    """``scores[i, j]`` = the cross-encoder's score of anchor query ``i`` for item ``docids[j]``."""

    scores: np.ndarray
    docids: np.ndarray
    anchor_qids: tuple[str, ...]
    anchor_texts: tuple[str, ...]
    model_id: str
    params: dict[str, Any] = field(default_factory=dict)
    _position: dict[str, int] = field(default=None, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        scores = np.asarray(self.scores, dtype=np.float32)
        docids = np.asarray(self.docids).astype(str)
        if scores.ndim != 2 or scores.shape != (len(self.anchor_qids), len(docids)):
            raise InputError(f"anchor matrix has shape {scores.shape}, expected "
                             f"({len(self.anchor_qids)} anchor queries, {len(docids)} items)",
                             fix="rebuild the CUR index")
        if len(self.anchor_texts) != len(self.anchor_qids):
            raise InputError("anchor query ids and texts differ in number", fix="rebuild the CUR index")
        if not np.all(np.isfinite(scores)):
            raise InputError("anchor matrix holds non-finite scores", fix="rebuild the CUR index")
        position = {d: i for i, d in enumerate(docids.tolist())}
        if len(position) != len(docids):
            raise InputError("an item id appears twice in the CUR index", fix="index each document once")
        scores.setflags(write=False)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "docids", docids)
        object.__setattr__(self, "_position", position)

    @property
    def n_anchor_queries(self) -> int:
        return int(self.scores.shape[0])

    def __len__(self) -> int:
        return int(self.scores.shape[1])

    def columns(self, docids: Sequence[str]) -> np.ndarray:
        """Column positions of ``docids``; an id outside the index is an InputError naming it."""
        out = np.empty(len(docids), dtype=np.int64)
        for i, d in enumerate(docids):
            try:
                out[i] = self._position[str(d)]
            except KeyError:
                raise InputError(f"document {str(d)!r} is not in the CUR anchor index ({len(self)} items)",
                                 fix="build the index over the same collection as the candidate run") from None
        return out

    # building --------------------------------------------------------------------------------
    @classmethod
    def build(cls, scorer: Any, anchor_queries: Queries, docids: Sequence[str], doc_texts: Sequence[str],
              model_id: str | None = None, chunk: int = 4096,
              on_progress: Callable[[int, int], None] | None = None, **params: Any) -> AnchorIndex:
        """Score every anchor query against every item with ``scorer.score`` (length-sorted batches).

        ``chunk``: pairs per ``score`` call (bounds the memory of tokenising ``k_q * N`` pairs at once).
        """
        require_bare_pairs(scorer, "a CUR index")
        if len(anchor_queries) == 0:
            raise InputError("a CUR index needs at least one anchor query", fix="pass anchor queries")
        if len(docids) == 0 or len(docids) != len(doc_texts):
            raise InputError(f"{len(docids)} item ids but {len(doc_texts)} texts", fix="pass one text per item")
        n_q, n_d = len(anchor_queries), len(docids)
        scores = np.empty((n_q, n_d), dtype=np.float32)
        flat = scores.reshape(-1)
        total = n_q * n_d
        texts = list(doc_texts)
        for start in range(0, total, chunk):
            idx = np.arange(start, min(start + chunk, total))
            q_idx, d_idx = np.divmod(idx, n_d)
            flat[idx] = scorer.score([anchor_queries.texts[i] for i in q_idx], [texts[j] for j in d_idx])
            if on_progress is not None:
                on_progress(int(idx[-1]) + 1, total)
        meta = {"precision": getattr(scorer, "precision_used", None), "n_items": n_d, "n_anchor_queries": n_q,
                **params}
        return cls(scores, np.asarray(list(docids), dtype=str), tuple(anchor_queries.qids),
                   tuple(anchor_queries.texts), model_id or scorer_identity(scorer), meta)

    # artefact --------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False,
             inputs: Sequence[str | os.PathLike[str]] = ()) -> dict:
        """Write ``scores.npy`` + ``items.json`` + ``anchors.json`` + manifest, atomically (never into
        ``inputs``; an existing index only with ``overwrite``; anything else never)."""
        with atomic_directory(path, overwrite=overwrite, inputs=inputs) as tmp:
            np.save(tmp / "scores.npy", np.ascontiguousarray(self.scores), allow_pickle=False)
            (tmp / "items.json").write_text(json.dumps(self.docids.tolist()), "utf-8")
            (tmp / "anchors.json").write_text(json.dumps({"qids": list(self.anchor_qids),
                                                          "texts": list(self.anchor_texts)}), "utf-8")
            params = {"model_id": self.model_id, "shape": list(self.scores.shape), **self.params}
            manifest = write_manifest(tmp, KIND, FORMAT_VERSION, json.loads(json.dumps(params, default=str)),
                                      libraries=["numpy", "torch", "transformers"])
        log.info("saved CUR anchor index %s to %s", self.scores.shape, path)
        return manifest

    @classmethod
    def load(cls, path: str | os.PathLike[str], verify: bool = True) -> AnchorIndex:
        """Load and verify a saved index (checksums, kind, version, shape)."""
        path = Path(path)
        manifest = read_manifest(path, KIND, (FORMAT_VERSION,), verify=verify)
        try:
            scores = np.load(path / "scores.npy", allow_pickle=False)
            docids = json.loads((path / "items.json").read_text("utf-8"))
            anchors = json.loads((path / "anchors.json").read_text("utf-8"))
        except (ValueError, OSError, json.JSONDecodeError) as exc:
            raise InputError(f"unreadable CUR index file ({exc})", path=path, fix="rebuild the CUR index") from None
        params = dict(manifest["params"])
        model_id = str(params.pop("model_id"))
        params.pop("shape", None)
        return cls(scores, np.asarray(docids, dtype=str), tuple(anchors["qids"]), tuple(anchors["texts"]),
                   model_id, params)

    def check_model(self, model_id: str) -> None:
        """Refuse to approximate one model's scores with another model's anchor matrix."""
        if model_id != self.model_id:
            raise InputError(f"this CUR index was computed with {self.model_id!r}, the reranker is {model_id!r}",
                             fix="rebuild the index with the reranker's model (or pass that model)")


def cache_key(model_id: str, corpus: str, anchor_qids: Sequence[str], max_length: Any) -> str:
    """A content key for the cached index of one model x corpus x anchor-query set."""
    raw = json.dumps({"model": model_id, "corpus": corpus, "anchors": list(anchor_qids), "max_length": max_length,
                      "format": FORMAT_VERSION}, sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def sample_anchor_queries(collection: Any, split: str, n: int, seed: int = 0) -> Queries:
    """``n`` queries of ``split`` drawn without replacement with ``seed`` (all of them when fewer)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"cur: anchor_queries must be a positive integer, got {n!r}")
    queries = collection.queries(split)
    if len(queries) == 0:
        raise InputError(f"split {split!r} of {collection.name!r} has no queries to use as CUR anchors",
                         fix="pass anchor_split= a split with judged queries, or index= a saved CUR index")
    if n >= len(queries):
        return queries
    pick = np.sort(np.random.default_rng(seed).choice(len(queries), size=n, replace=False))
    return queries.subset([queries.qids[i] for i in pick])


def index_for_collection(scorer: Any, collection: Any, anchors: Queries, cache_dir: str | os.PathLike[str] | None,
                         progress: bool = False) -> AnchorIndex:
    """The anchor matrix of ``anchors`` x every document of ``collection``, cached by content under
    ``cache_dir/cur`` (model fingerprint, corpus fingerprint, anchor ids, max length)."""
    from rankstack.storage import fingerprint

    model_id = scorer_identity(scorer)
    where = None
    if cache_dir is not None:
        key = cache_key(model_id, fingerprint(collection.corpus_path), anchors.qids, getattr(scorer, "max_length", None))
        where = Path(cache_dir) / "cur" / f"index-{key}"
        if where.is_dir():
            try:
                return AnchorIndex.load(where)
            except InputError as exc:
                log.warning("ignoring unreadable cached CUR index %s: %s", where, exc)
    docs = collection.documents()
    docids = list(docs)
    log.info("building a CUR anchor index: %d anchor queries x %d documents = %d cross-encoder calls",
             len(anchors), len(docids), len(anchors) * len(docids))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(anchors) * len(docids), desc="cur index", unit="pair")

    def tick(done: int, total: int) -> None:
        if bar is not None:
            bar.update(done - bar.n)

    index = AnchorIndex.build(scorer, anchors, docids, [docs[d].contents for d in docids], model_id=model_id,
                              on_progress=tick, collection=collection.name)
    if bar is not None:
        bar.close()
    if where is not None:
        index.save(where, overwrite=True)
    return index
