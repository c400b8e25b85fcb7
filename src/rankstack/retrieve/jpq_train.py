"""Training JPQ centroids (and optionally the query encoder) with the shared Trainer and losses.

Zhan et al., "Jointly Optimizing Query Encoder and Product Quantization to Improve Retrieval
Performance" (CIKM 2021), §4: for each training query the *current* PQ index (FAISS ADC over the
fixed codes with the current centroids) retrieves the top ``depth`` documents; the judged positives
are appended when not retrieved; the ranking loss over these candidates, scored by the query's
inner product with the PQ-reconstructed documents, trains the centroids. The paper's loss is a
pairwise logistic loss weighted by rank differences (a LambdaRank-style loss): any
``rankstack.losses`` spec can be used here (``lambdarank``, ``listnet``, ``pgrank``, ...);
``scale`` multiplies the cosine-sized scores before the loss (a softmax temperature of 1/scale).

Two settings: a frozen query encoder (its query vectors are computed once and cached, so a step
is a FAISS search plus a few small tensor products: seconds per epoch on a CPU), or a trained one
(a SentenceTransformer updated with its own learning rate multiplier, as in the paper; documents
are never re-encoded either way). Validation is nDCG@10 (``rankstack.evaluate``) of the current
index on held-out *training* queries; the best state is kept, and the starting centroids are
kept when training never beats them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rankstack.errors import InputError
from rankstack.retrieve.dense_index import DenseIndex
from rankstack.retrieve.jpq import JPQModule, PQParts, pq_parts, sync_centroids
from rankstack.types import Qrels, Queries, Run

__all__ = ["JPQFit", "JPQCollator", "train_jpq", "search_run", "encode_queries"]

log = logging.getLogger(__name__)


def encode_queries(module: Any, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Query vectors from the module's (trainable) encoder, eval mode, no gradient."""
    import torch

    enc = module.query_encoder
    was = enc.training
    enc.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            emb = enc(enc.tokenize(texts[i:i + batch_size]))["sentence_embedding"].float()
            out.append(torch.nn.functional.normalize(emb, dim=-1).numpy())
    enc.train(was)
    return np.concatenate(out) if out else np.zeros((0, module.centroids.shape[0] * module.centroids.shape[2]),
                                                      dtype=np.float32)


def search_run(index: DenseIndex, qids: list[str], qvecs: np.ndarray, k: int, name: str = "jpq") -> Run:
    """A Run of ``index`` searched with ``qvecs`` (rows of ``qids``)."""
    scores, rows = index.search(np.ascontiguousarray(qvecs, dtype=np.float32), k)
    keep = rows >= 0
    q = np.repeat(np.asarray(qids, dtype=str), keep.sum(axis=1))
    return Run(q, index.docids[rows[keep]], scores[keep].astype(np.float64), name=name)


@dataclass
class JPQCollator:
    """``collate(qids) -> (inputs, labels, mask, None)``: candidates retrieved from the current PQ
    index (top ``depth``) plus the query's judged positives, labelled with their grades."""

    module: Any
    index: DenseIndex
    parts: PQParts
    judged: dict[str, dict[str, int]]
    depth: int
    qvecs: dict[str, np.ndarray] | None = None     # frozen encoder: cached query vectors
    texts: dict[str, str] | None = None            # trained encoder: query texts
    row_of: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.row_of = {d: i for i, d in enumerate(self.index.docids.tolist())}

    def __call__(self, qids: list[str]) -> tuple[dict[str, Any], Any, Any, None]:
        import torch

        if self.qvecs is not None:
            q = np.stack([self.qvecs[qid] for qid in qids]).astype(np.float32)
        else:
            q = encode_queries(self.module, [self.texts[qid] for qid in qids])  # type: ignore[index]
        sync_centroids(self.parts, self.module.centroids)
        _, rows = self.index.search(q, self.depth)
        lists, grades = [], []
        for qid, found in zip(qids, rows):
            cand = [int(r) for r in found if r >= 0]
            pos = [self.row_of[d] for d, g in sorted(self.judged.get(qid, {}).items())
                   if g > 0 and d in self.row_of]
            cand += [r for r in pos if r not in set(cand)]
            docids = self.index.docids[cand]
            lists.append(cand)
            grades.append([float(max(self.judged.get(qid, {}).get(d, 0), 0)) for d in docids.tolist()])
        width = max(len(c) for c in lists)
        row_t = torch.zeros(len(qids), width, dtype=torch.long)
        labels = torch.zeros(len(qids), width)
        mask = torch.zeros(len(qids), width, dtype=torch.bool)
        for i, (c, g) in enumerate(zip(lists, grades)):
            row_t[i, :len(c)] = torch.tensor(c)
            labels[i, :len(c)] = torch.tensor(g)
            mask[i, :len(c)] = True
        if self.qvecs is not None:
            inputs: dict[str, Any] = {"q_vec": torch.from_numpy(q), "rows": row_t}
        else:
            enc = self.module.query_encoder
            inputs = {"q_features": dict(enc.tokenize([self.texts[qid] for qid in qids])), "rows": row_t}  # type: ignore[index]
        return inputs, labels, mask, None


@dataclass
class JPQFit:
    """The trained module, the FAISS index now holding its centroids, and what training did."""

    module: Any
    index: DenseIndex
    parts: PQParts
    initial_validation: float | None
    best_validation: float | None
    steps: int
    seconds: float
    kept_initial: bool
    stopped_by_budget: bool
    history: list[dict[str, Any]]
    trainer_config: dict[str, Any]


def train_jpq(index: DenseIndex, queries: Queries, qrels: Qrels, *, train_qids: list[str], val_qids: list[str],
              qvecs: np.ndarray | None = None, query_encoder: Any = None, loss: Any = "listnet",
              scale: float = 20.0, depth: int = 100, epochs: int = 10, max_steps: int | None = None,
              batch_size: int = 32, lr: float = 1e-4, encoder_lr: float = 5e-6, warmup_ratio: float = 0.05,
              validate_every: int | None = None, patience: int | None = 3, time_budget: float | None = None,
              seed: int = 0, threads: int | None = None, progress: bool | None = None) -> JPQFit:
    """Train ``index``'s centroids (in place: FAISS ends up holding the best ones).

    ``qvecs``: query vectors aligned with ``queries.qids`` (frozen encoder), or ``query_encoder``: a
    SentenceTransformer trained along (``encoder_lr``). ``lr`` is the centroids' learning rate
    (AdamW, no weight decay). ``time_budget`` in seconds.
    """
    import torch

    from rankstack.evaluate import evaluate
    from rankstack.train.trainer import Trainer

    if (qvecs is None) == (query_encoder is None):
        raise InputError("JPQ: pass exactly one of qvecs (frozen query encoder) or query_encoder (trained)")
    for name, value in (("depth", depth), ("batch_size", batch_size), ("epochs", epochs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"JPQ: {name} must be a positive integer, got {value!r}")
    if not (scale > 0 and lr > 0 and encoder_lr >= 0):
        raise InputError("JPQ: scale and lr must be > 0, encoder_lr >= 0")
    judged = qrels.to_dict()
    train_qids = [q for q in train_qids if any(g > 0 for g in judged.get(q, {}).values())]
    if not train_qids:
        raise InputError("JPQ: no training query has a judged positive", fix="check the split's qrels")
    parts = pq_parts(index.index)
    qpos = {q: i for i, q in enumerate(queries.qids)}
    vec_of = None if qvecs is None else {q: np.asarray(qvecs[qpos[q]], dtype=np.float32) for q in queries.qids}
    texts = {q: queries[q] for q in queries.qids}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = JPQModule(parts, query_encoder, scale)
    if query_encoder is not None:
        module.query_encoder.train()
    val_qrels = qrels.restrict(val_qids)

    def validate(mod: Any) -> float:
        sync_centroids(parts, mod.centroids)
        vq = np.stack([vec_of[q] for q in val_qids]) if vec_of is not None else \
            encode_queries(mod, [texts[q] for q in val_qids])
        return evaluate(search_run(index, val_qids, vq, 100), val_qrels, ["nDCG@10"]).mean["nDCG@10"]

    validate_fn = validate if val_qids else None
    initial = validate(module) if validate_fn else None
    start_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    collate = JPQCollator(module, index, parts, judged, depth, qvecs=vec_of,
                          texts=texts if query_encoder is not None else None)
    trainer = Trainer(module, loss, optimizer="adamw", lr=lr, weight_decay=0.0, warmup_ratio=warmup_ratio,
                      schedule="linear", epochs=epochs, max_steps=max_steps, batch_size=batch_size,
                      grad_clip=1.0, precision="fp32", seed=seed, validate_every=validate_every,
                      validate_fn=validate_fn, patience=patience if validate_fn else None,
                      param_groups={"query_encoder": encoder_lr / lr} if query_encoder is not None else None,
                      num_threads=threads, progress=progress, time_budget=time_budget)
    t0 = time.perf_counter()
    log.info("JPQ: %d training queries, %d validation, depth %d, %s query encoder", len(train_qids),
             len(val_qids), depth, "trained" if query_encoder is not None else "frozen")
    fit = trainer.fit(train_qids, collate)
    kept_initial = initial is not None and fit.best_value is not None and fit.best_value <= initial
    if kept_initial:
        log.info("JPQ: validation never beat the starting index (%.4f); keeping the starting centroids", initial)
        module.load_state_dict(start_state)
    sync_centroids(parts, module.centroids)
    module.eval()
    return JPQFit(module, index, parts, initial, fit.best_value, fit.steps, time.perf_counter() - t0,
                  kept_initial, fit.stopped_by_budget, list(fit.history), trainer.config())
