"""Bi-encoder training data (a helper of :mod:`rankstack.recipes.biencoder`): the collate function,
validation with the real ``evaluate``, dynamic negatives from the current model's index, and the
cached teacher scores of cross-architecture distillation.

Groups are the cross-encoder recipe's (:class:`rankstack.recipes.reranker_data.Group`: a query, its
positive first, then mined negatives), so the negatives, the false-negative filter and any loss of
:mod:`rankstack.losses` are shared. Teacher scores are an artefact (``teacher-scores`` kind, NumPy +
checksummed manifest) keyed by the teacher's own manifest and the exact (query, document) pairs, so
a second run with the same teacher and negatives scores nothing (hand-written because the embedding
cache of :mod:`rankstack.encode.base` stores vectors of one encoder, not pair scores).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.errors import InputError

__all__ = ["BiEncoderCollator", "DenseValidator", "mine_dynamic", "teacher_scores", "attach_scores",
           "TEACHER_KIND"]

log = logging.getLogger(__name__)

TEACHER_KIND = "teacher-scores"
TEACHER_FORMAT = 1


@dataclass
class BiEncoderCollator:
    """``collate(groups) -> (inputs, labels, mask, None)`` for :func:`BiEncoderScorer`.

    ``in_batch``: labels over *every* document of the batch (a document judged for a query but
    belonging to another example is masked out, never a negative); otherwise each query's own
    candidates only (``own`` gathers them). With ``teacher=True`` the labels are the groups' teacher
    scores (``meta["teacher"]``) over their own candidates: distillation; with ``mix=True`` as well the
    labels are ``[B, L, 2]`` (judgement, teacher score) for :class:`DistillationMix`.
    """

    model: Any
    doc_texts: Callable[[Sequence[str]], list[str]]
    judged: dict[str, dict[str, int]]
    query_max_length: int = 64
    doc_max_length: int = 192
    in_batch: bool = True
    teacher: bool = False
    mix: bool = False
    fixed: Any = None  # a FixedIndex: documents are its cached vectors, only queries are encoded

    def __post_init__(self) -> None:
        self._texts: dict[str, str] = {}

    def texts(self, docids: list[str]) -> list[str]:
        missing = [d for d in dict.fromkeys(docids) if d not in self._texts]
        if missing:
            self._texts.update(zip(missing, self.doc_texts(missing)))
        return [self._texts[d] for d in docids]

    def __call__(self, groups: list[Any]) -> tuple[dict[str, Any], Any, Any, None]:
        import torch

        from rankstack.encode.biencoder_model import tokenize

        if not groups:
            raise InputError("cannot collate an empty batch")
        docids = [d for g in groups for d in g.docids]
        inputs: dict[str, Any] = {"q": tokenize(self.model, [g.query for g in groups], self.query_max_length),
                                  "own": None}
        if self.fixed is not None:
            inputs["d_vectors"] = self.fixed.tensor[torch.tensor([self.fixed.row[d] for d in docids])]
        else:
            inputs["d"] = tokenize(self.model, self.texts(docids), self.doc_max_length)
        if self.in_batch and not self.teacher:
            labels = torch.zeros(len(groups), len(docids))
            mask = torch.ones(len(groups), len(docids), dtype=torch.bool)
            start = 0
            for i, g in enumerate(groups):
                judged = self.judged.get(g.qid, {})
                for j, doc in enumerate(docids):
                    if doc in judged and not start <= j < start + len(g.docids):
                        mask[i, j] = False
                labels[i, start:start + len(g.docids)] = torch.tensor(g.labels, dtype=torch.float32)
                start += len(g.docids)
            return inputs, labels, mask, None
        width = max(len(g.docids) for g in groups)
        own = torch.zeros(len(groups), width, dtype=torch.long)
        labels = torch.zeros(len(groups), width, 2) if self.mix else torch.zeros(len(groups), width)
        mask = torch.zeros(len(groups), width, dtype=torch.bool)
        start = 0
        for i, g in enumerate(groups):
            n = len(g.docids)
            own[i, :n] = torch.arange(start, start + n)
            if self.mix:
                labels[i, :n, 0] = torch.tensor(g.labels, dtype=torch.float32)
                labels[i, :n, 1] = torch.tensor(g.meta["teacher"], dtype=torch.float32)
            else:
                values = g.meta["teacher"] if self.teacher else g.labels
                labels[i, :n] = torch.tensor(values, dtype=torch.float32)
            mask[i, :n] = True
            start += n
        inputs["own"] = own
        return inputs, labels, mask, None


class DenseValidator:
    """nDCG@10 of the current model reranking the BM25 top ``depth`` of held-out training queries
    (the documents are encoded with the current weights; the number is what dense reranking gives)."""

    def __init__(self, model: Any, queries: Any, qrels: Any, run: Any, doc_texts: Any, max_length: int,
                 precision: str = "auto", threads: int | None = None, doc_vectors: Any = None) -> None:
        self.model, self.queries, self.qrels, self.run = model, queries, qrels, run
        self.docids = sorted({str(d) for d in run.docids.tolist()})
        self.texts = [] if doc_vectors is not None else doc_texts(self.docids)
        self.doc_vectors = doc_vectors  # ADORE: fixed document vectors, {docid: vector}
        self.max_length, self.precision, self.threads = max_length, precision, threads
        self.history: list[float] = []

    def __call__(self, *_: Any) -> float:
        from rankstack.encode.biencoder_model import InMemoryEncoder
        from rankstack.evaluate import evaluate

        enc = InMemoryEncoder(self.model, max_length=self.max_length, precision=self.precision,
                              threads=self.threads, progress=False)
        if self.doc_vectors is not None:
            vectors = np.stack([self.doc_vectors[d] for d in self.docids])
        else:
            vectors = enc.encode(self.texts)
        qv = dict(zip(self.queries.qids, enc.encode(list(self.queries.texts))))
        where = {d: i for i, d in enumerate(self.docids)}
        rows = np.array([where[str(d)] for d in self.run.docids.tolist()])
        q = np.stack([qv[x] for x in self.run.qids.tolist()])
        scores = np.einsum("ij,ij->i", vectors[rows], q).astype(np.float64)
        value = float(evaluate(self.run.replace(scores=scores, name="dense-val"), self.qrels, ["nDCG@10"])
                      .mean["nDCG@10"])
        self.history.append(value)
        return value


def mine_dynamic(model: Any, coll: Any, queries: Any, qrels: Any, n: int, depth: int, skip: int, seed: int,
                 cache_dir: Path | None, max_length: int, precision: str, threads: int | None) -> dict[str, list[str]]:
    """Hard negatives from the *current* model's index of the corpus (dynamic negatives, Zhan et al. 2021).

    The corpus is encoded with the current weights through the embedding cache (keyed by a hash of
    the weights), searched exactly with FAISS, and negatives sampled from ranks ``skip+1..depth``.
    """
    import faiss

    from rankstack.encode.base import cached_encode
    from rankstack.encode.biencoder_model import InMemoryEncoder
    from rankstack.train.negatives import sample_negatives
    from rankstack.types import Run

    enc = InMemoryEncoder(model, max_length=max_length, precision=precision, threads=threads)
    docs = list(coll.corpus())
    ids = [d.docid for d in docs]
    vectors = cached_encode(enc, [d.contents for d in docs], ids, cache_dir)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    scores, rows = index.search(enc.encode(list(queries.texts), progress=False), depth)
    qids = np.repeat(np.asarray(queries.qids, dtype=str), depth)
    run = Run(qids, np.asarray(ids)[rows.reshape(-1)], scores.reshape(-1).astype(np.float64), name="dynamic")
    return sample_negatives(queries, qrels, n, "dense", run=run, depth=depth, skip=skip, seed=seed)


def _pairs_key(teacher_id: str, max_length: int, pairs: list[tuple[str, str]]) -> str:
    h = hashlib.sha256(json.dumps({"teacher": teacher_id, "max_length": max_length}).encode())
    for q, d in pairs:
        h.update(q.encode())
        h.update(b"\x00")
        h.update(d.encode())
        h.update(b"\x01")
    return h.hexdigest()


def teacher_scores(scorer: Any, teacher_id: str, pairs: list[tuple[str, str]], query_text: dict[str, str],
                   doc_texts: Callable[[Sequence[str]], list[str]], cache_dir: Path | None) -> np.ndarray:
    """A pair scorer's scores of ``pairs`` (qid, docid), cached under ``cache_dir/teacher-scores/``.

    ``teacher_id`` names the teacher's weights (its manifest checksum); a corrupt or mismatching cache
    folder is logged and recomputed, never trusted.
    """
    from rankstack.storage import atomic_directory, read_manifest, write_manifest

    key = _pairs_key(teacher_id, int(getattr(scorer, "max_length", 0) or 0), pairs)
    folder = None if cache_dir is None else Path(cache_dir) / "teacher-scores" / key[:16]
    if folder is not None and folder.is_dir():
        try:
            p = read_manifest(folder, TEACHER_KIND, (TEACHER_FORMAT,))["params"]
            if (p.get("key"), p.get("num_pairs")) != (key, len(pairs)):
                raise InputError("cached teacher scores describe other pairs or another teacher", path=folder)
            scores = np.load(folder / "scores.npy", allow_pickle=False)
            if scores.shape != (len(pairs),):
                raise InputError(f"cached teacher scores have shape {scores.shape}", path=folder)
            log.info("loaded %d cached teacher scores from %s", len(pairs), folder)
            return scores
        except InputError as exc:
            log.warning("re-scoring: ignoring unusable teacher-score cache %s (%s)", folder, exc)
    from rankstack.rerank.base import require_bare_pairs

    require_bare_pairs(scorer, "a bi-encoder teacher")
    q_texts = [query_text[q] for q, _ in pairs]
    unique = list(dict.fromkeys(d for _, d in pairs))
    text_of = dict(zip(unique, doc_texts(unique)))
    scores = np.asarray(scorer.score(q_texts, [text_of[d] for _, d in pairs]), dtype=np.float64)
    if folder is not None:
        with atomic_directory(folder, overwrite=True) as tmp:
            np.save(tmp / "scores.npy", scores, allow_pickle=False)
            (tmp / "pairs.json").write_text(json.dumps(pairs), encoding="utf-8")
            write_manifest(tmp, TEACHER_KIND, TEACHER_FORMAT, {"key": key, "teacher": teacher_id,
                                                               "num_pairs": len(pairs)},
                           libraries=["numpy", "torch", "transformers"])
    return scores


def attach_scores(groups: list[Any], scores: dict[tuple[str, str], float]) -> list[Any]:
    """Each group with ``meta["teacher"]`` = the teacher score of each of its documents."""
    return [dataclasses.replace(g, meta={**g.meta, "teacher": [float(scores[(g.qid, d)]) for d in g.docids]})
            for g in groups]
