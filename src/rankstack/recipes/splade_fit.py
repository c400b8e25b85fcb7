"""The pieces of SPLADE training (a helper of :mod:`rankstack.recipes.splade`): teacher scores, the
``[B, L]`` scoring module, collate, the regularised objective and validation.

Distillation (Hofstätter et al., "Improving Efficient Neural Ranking Models with Cross-Architecture
Knowledge Distillation", 2020): each training list is one query with its positive and mined
negatives, labelled by a teacher's scores; Margin-MSE or listwise KL from :mod:`rankstack.losses`
turns them into a loss. Teachers:

* ``cross-encoder``: a rankstack cross-encoder folder (default: the scifact-trained one); scores are
  computed once and cached by (teacher fingerprint, pairs) under the cache folder.
* ``ensemble``: the heterogeneous ensemble of Geng, Ru & Yang (2024): a dense (MiniLM) and a sparse
  (the base SPLADE model) siamese teacher, each min-max normalised per list, then summed, so neither
  scale dominates.

The objective is ``rank_loss + lambda_d(t) * R(doc reps) [+ lambda_q(t) * FLOPS(query reps)]`` with
``R`` FLOPS or IDF-aware FLOPS (:mod:`rankstack.losses.flops`: weights ``1 / idf``) and the quadratic lambda ramp. The
Trainer only sees a callable loss; the representations of the current batch are read from the
scoring module, so the shared loop needs no change.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from rankstack import normalize
from rankstack.errors import InputError
from rankstack.losses.flops import flops, idf_flops, lambda_warmup

__all__ = ["Group", "teacher_scores", "SpladeListModel", "SpladeCollator", "SpladeObjective", "SpladeValidator"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Group:
    qid: str
    query: str
    docids: list[str]
    labels: list[float]  # teacher scores


# --------------------------------------------------------------------------------------------- teachers
def _cached(cache_dir: Path | None, key: dict[str, Any], compute: Callable[[], np.ndarray]) -> np.ndarray:
    if cache_dir is None:
        return compute()
    from rankstack.storage import atomic_directory, read_manifest, write_manifest

    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    folder = Path(cache_dir) / "splade" / f"teacher-{digest}"
    if folder.is_dir():
        try:
            m = read_manifest(folder, "teacher-scores", (1,))
            scores = np.load(folder / "scores.npy", allow_pickle=False)
            if m["params"].get("n") == key["n"] and scores.shape == (key["n"],):
                log.info("loaded %d cached teacher scores from %s", key["n"], folder)
                return scores
        except (InputError, ValueError, OSError) as exc:
            log.warning("recomputing teacher scores: %s", exc)
    scores = np.asarray(compute(), dtype=np.float64)
    with atomic_directory(folder, overwrite=True) as tmp:
        np.save(tmp / "scores.npy", scores, allow_pickle=False)
        write_manifest(tmp, "teacher-scores", 1, key, libraries=["numpy"])
    return scores


def teacher_scores(pairs: list[tuple[str, str, str]], kind: str, collection: Any, cache_dir: Path | None,
                   teacher_model: str | None = None, base_model: str = "splade-tiny", precision: str = "auto",
                   threads: int | None = None) -> np.ndarray:
    """Teacher score of every ``(qid, query, docid)`` pair; cached by teacher and pairs."""
    from rankstack.storage import fingerprint

    pairs_key = hashlib.sha256(json.dumps(pairs).encode()).hexdigest()
    docs = lambda ids: collection.doc_texts(ids)  # noqa: E731
    if kind == "cross-encoder":
        if not teacher_model:
            raise InputError("the cross-encoder teacher needs a model folder", fix="pass --teacher-model DIR")

        def compute() -> np.ndarray:
            from rankstack.rerank.cross_encoder import CrossEncoderReranker

            from rankstack.rerank.base import require_bare_pairs

            ce = CrossEncoderReranker(teacher_model, documents=collection, precision=precision, threads=threads)
            require_bare_pairs(ce, "a SPLADE teacher")
            return ce.score([p[1] for p in pairs], docs([p[2] for p in pairs]))

        key = {"teacher": "cross-encoder", "model": fingerprint(teacher_model), "pairs": pairs_key, "n": len(pairs)}
        return _cached(cache_dir, key, compute)
    if kind == "ensemble":
        def compute_dense() -> np.ndarray:
            from rankstack.train.negatives import DenseTeacher

            return DenseTeacher("minilm", collection=collection, cache_dir=cache_dir).score(
                [p[1] for p in pairs], docs([p[2] for p in pairs]))

        def compute_sparse() -> np.ndarray:
            from rankstack.encode.splade import SpladeEncoder

            enc = SpladeEncoder(base_model, precision=precision, threads=threads)
            q = enc.encode_queries([p[1] for p in pairs])
            d = enc.encode(docs([p[2] for p in pairs]))
            return np.asarray(q.multiply(d).sum(axis=1)).ravel()

        dense = _cached(cache_dir, {"teacher": "dense-minilm", "pairs": pairs_key, "n": len(pairs)}, compute_dense)
        sparse = _cached(cache_dir, {"teacher": "splade", "model": base_model, "pairs": pairs_key, "n": len(pairs)},
                         compute_sparse)
        return np.stack([dense, sparse])  # normalised per list by ensemble_labels
    raise InputError(f"unknown teacher {kind!r}", fix="choose 'cross-encoder' or 'ensemble'")


def ensemble_labels(per_teacher: list[np.ndarray]) -> np.ndarray:
    """Sum of per-list min-max normalised teacher scores (Geng et al., 2024)."""
    return np.sum([normalize.minmax(s) for s in per_teacher], axis=0)


# --------------------------------------------------------------------------------------------- model
class SpladeListModel:
    """Factory for the ``torch.nn.Module`` the Trainer trains (defined lazily: torch loads on use)."""

    def __new__(cls, encoder: Any, idf: np.ndarray | None = None) -> Any:
        import torch

        class _Module(torch.nn.Module):
            """``forward(inputs) -> scores [B, L]``; keeps the batch's representations for the regulariser."""

            def __init__(self) -> None:
                super().__init__()
                self.model = encoder.model
                self.inference_free = idf is not None
                self.register_buffer("idf", torch.as_tensor(idf if idf is not None else np.zeros(0), dtype=torch.float32),
                                     persistent=False)
                self.doc_reps: Any = None
                self.query_reps: Any = None

            def forward(self, inputs: dict[str, Any]) -> Any:
                d = encoder.represent(inputs["docs"], self.model)  # [n_real, V]
                B, L = inputs["shape"]
                if self.inference_free:
                    q = inputs["query_bow"] * self.idf[None, :]  # idf-weighted query tokens, no model
                    self.query_reps = None
                else:
                    q = encoder.represent(inputs["queries"], self.model)
                    self.query_reps = q
                self.doc_reps = d
                owner = inputs["owner"]  # query row of each real document
                s = (q[owner] * d).sum(-1)
                scores = torch.zeros(B * L, dtype=s.dtype, device=s.device)
                scores = scores.index_put((inputs["slot"],), s)
                return scores.view(B, L)

        return _Module()


class SpladeCollator:
    """``collate(groups) -> (inputs, labels, mask, None)``; only real documents are tokenised."""

    def __init__(self, encoder: Any, doc_texts: Callable[[list[str]], list[str]], inference_free: bool) -> None:
        self.encoder, self.doc_texts, self.inference_free = encoder, doc_texts, inference_free

    def __call__(self, groups: list[Group]) -> tuple[Any, Any, Any, None]:
        import torch

        B, L = len(groups), max(len(g.docids) for g in groups)
        labels = torch.zeros(B, L)
        mask = torch.zeros(B, L, dtype=torch.bool)
        docids, owner, slot = [], [], []
        for b, g in enumerate(groups):
            for j, (d, y) in enumerate(zip(g.docids, g.labels)):
                labels[b, j], mask[b, j] = float(y), True
                docids.append(d)
                owner.append(b)
                slot.append(b * L + j)
        queries = [g.query for g in groups]
        inputs: dict[str, Any] = {"docs": self.encoder.tokenize(self.doc_texts(docids)), "shape": (B, L),
                                  "owner": torch.tensor(owner), "slot": torch.tensor(slot)}
        if self.inference_free:
            bow = torch.zeros(B, self.encoder.vocab_size)
            for b, ids in enumerate(self.encoder.token_ids(queries)):
                u = np.setdiff1d(np.unique(ids), self.encoder._special)
                bow[b, torch.as_tensor(u, dtype=torch.long)] = 1.0
            inputs["query_bow"] = bow
        else:
            inputs["queries"] = self.encoder.tokenize(queries)
        return inputs, labels, mask, None


class SpladeObjective:
    """``rank_loss + lambda_d(t) R(doc reps) + lambda_q(t) FLOPS(query reps)`` for the shared Trainer."""

    def __init__(self, rank_loss: Any, module: Any, regulariser: str, lambda_d: float, lambda_q: float,
                 warmup_steps: int, step_fn: Callable[[], int], idf: np.ndarray | None) -> None:
        import torch

        self.rank_loss, self.module, self.regulariser = rank_loss, module, regulariser
        self.lambda_d, self.lambda_q, self.warmup_steps, self.step_fn = lambda_d, lambda_q, warmup_steps, step_fn
        self.idf = None if idf is None else torch.as_tensor(idf, dtype=torch.float32)
        self.last: dict[str, float] = {}

    def __call__(self, scores: Any, labels: Any, mask: Any, weights: Any = None) -> Any:
        step = self.step_fn()
        loss = self.rank_loss(scores, labels, mask, weights)
        d = self.module.doc_reps
        reg_d = idf_flops(d, self.idf) if self.regulariser == "idf-flops" else flops(d)
        total = loss + lambda_warmup(step, self.lambda_d, self.warmup_steps) * reg_d
        reg_q = 0.0
        if self.module.query_reps is not None and self.lambda_q > 0:
            reg_q = flops(self.module.query_reps)
            total = total + lambda_warmup(step, self.lambda_q, self.warmup_steps) * reg_q
        self.last = {"rank": float(loss.detach()), "reg_d": float(reg_d.detach()), "reg_q": float(reg_q.detach()) if hasattr(reg_q, "detach") else 0.0}
        return total

    def spec(self) -> dict[str, Any]:
        inner = self.rank_loss.spec() if hasattr(self.rank_loss, "spec") else repr(self.rank_loss)
        return {"name": "splade-objective", "args": {"rank_loss": inner, "regulariser": self.regulariser,
                                                     "lambda_d": self.lambda_d, "lambda_q": self.lambda_q,
                                                     "warmup_steps": self.warmup_steps}}


class SpladeValidator:
    """nDCG@10 of reranking a first stage's top ``depth`` by the model's SPLADE dot products (held-out queries)."""

    def __init__(self, encoder: Any, first_stage: Any, qrels: Any, collection: Any, inference_free: bool,
                 idf: np.ndarray | None, depth: int = 20) -> None:
        self.encoder, self.first_stage, self.qrels, self.collection = encoder, first_stage.top_k(depth), qrels, collection
        self.inference_free, self.idf, self.history = inference_free, idf, []

    def __call__(self, *_: Any) -> float:
        from rankstack.evaluate import evaluate

        run, queries = self.first_stage, self.first_stage.queries
        docids = sorted(set(run.docids.tolist()))
        dmat = self.encoder.encode(self.collection.doc_texts(docids), progress=False)
        row = {d: i for i, d in enumerate(docids)}
        texts = list(queries.texts)
        qmat = self.encoder.idf_queries(texts, self.idf) if self.inference_free else self.encoder.encode_queries(texts)
        qpos = {q: i for i, q in enumerate(queries.qids)}
        qs = qmat.tocsr()[[qpos[q] for q in run.qids.tolist()]]
        ds = dmat[[row[d] for d in run.docids.tolist()]]
        scores = np.asarray(qs.multiply(ds).sum(axis=1)).ravel()
        value = evaluate(run.replace(scores=scores), self.qrels, ["nDCG@10"]).mean["nDCG@10"]
        self.history.append(value)
        return value
