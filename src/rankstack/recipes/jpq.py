"""Train a JPQ compressed dense index (``rankstack train jpq``) and save it for ``dense(index=FOLDER)``.

JPQ (Zhan et al., "Jointly Optimizing Query Encoder and Product Quantization to Improve Retrieval
Performance", CIKM 2021; :mod:`rankstack.retrieve.jpq`): the corpus is encoded once (the embedding
cache the ``dense`` retriever uses), a FAISS OPQ+PQ (or PQ) index of ``m`` bytes per document is
built from it, then its centroids -- and with ``train_encoder`` the query encoder -- are trained on
the judged training queries with a ranking loss over hard negatives retrieved from the current PQ
index (:mod:`rankstack.retrieve.jpq_train`). Held-out training queries pick the best state. The
result is a ``dense-index`` folder (FAISS index with the trained centroids + manifest; a trained
query encoder as a sentence-transformers folder inside). With ``eval_split`` the starting and the
trained index are also measured (nDCG@10) on that split's queries, which are never trained on.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rankstack.errors import InputError
from rankstack.recipes.config import option, to_dict

__all__ = ["JPQTrainConfig", "JPQTrainOutcome", "run"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JPQTrainConfig:
    """Train JPQ centroids (and optionally the query encoder) on a collection's judged queries."""

    collection: str = option("scifact", help="a BEIR folder or a name under the data root")
    data_root: str | None = option(None, help="folder holding collections by name")
    split: str = option("train", help="qrels split to train on")
    out: Path | None = option(None, help="index folder to write (none: do not save)")
    overwrite: bool = option(False, help="replace a dense index already at --out")
    cache_dir: Path = option(Path(".cache/rankstack"), help="cache folder (document and query embeddings)")
    encoder: str = option("minilm", help="encoder of the documents (and starting query encoder)")
    m: int = option(48, help="bytes per document (sub-vectors of 8 bits): 48 = 32x, 16 = 96x for 384-d fp32")
    opq: bool = option(True, help="start from OPQ (rotation + PQ) rather than plain PQ")
    train_encoder: bool = option(False, help="train the query encoder too (else its vectors are cached once)")
    loss: str = option("listnet", metavar="SPEC", help="ranking loss from rankstack.losses")
    scale: float = option(20.0, help="score multiplier before the loss (1/temperature)")
    depth: int = option(100, help="hard negatives: top documents of the current PQ index per query")
    epochs: int = option(20, help="passes over the training queries")
    max_steps: int | None = option(None, help="stop after this many optimiser steps")
    time_budget: float | None = option(None, help="minutes of training, then stop (best state kept)")
    batch_size: int = option(32, help="queries per step")
    lr: float = option(1e-4, help="AdamW learning rate of the centroids")
    encoder_lr: float = option(5e-6, help="learning rate of the query encoder (with --train-encoder)")
    validation: int = option(80, help="held-out training queries for validation (0: none)")
    validate_every: int | None = option(None, help="validate every N steps (none: each epoch)")
    patience: int | None = option(4, help="stop after N validations without improvement")
    eval_split: str | None = option("test", help="also measure the starting and trained index on this split")
    precision: str = option("auto", choices=("auto", "fp32", "bf16"), help="encoding precision of the corpus")
    threads: int | None = option(None, help="torch threads")
    seed: int = option(0, help="seed of PQ k-means, the validation split and batch order")

    def __post_init__(self) -> None:
        for name in ("m", "depth", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.validation < 0:
            raise InputError(f"validation must be >= 0, got {self.validation!r}")
        if self.lr <= 0 or self.encoder_lr < 0 or self.scale <= 0:
            raise InputError("lr and scale must be > 0, encoder_lr >= 0")
        if self.time_budget is not None and self.time_budget <= 0:
            raise InputError(f"time_budget must be positive minutes, got {self.time_budget!r}")


@dataclass
class JPQTrainOutcome:
    """What training did and, with ``eval_split``, the starting vs trained index on that split."""

    out: str | None
    bytes_per_doc: float
    index_type: str
    train_queries: int
    validation_queries: int
    steps: int
    train_seconds: float
    seconds: float
    initial_validation: float | None
    best_validation: float | None
    kept_initial: bool
    evaluation: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_text(self) -> str:
        lines = [f"JPQ {self.index_type} index, {self.bytes_per_doc:g} bytes/doc; trained on {self.train_queries} "
                 f"queries ({self.validation_queries} held out) in {self.steps} steps, {self.train_seconds:.0f}s"]
        if self.initial_validation is not None:
            lines.append(f"validation nDCG@10: start {self.initial_validation:.4f} -> best "
                         f"{self.best_validation or 0:.4f}" + (" (kept the start)" if self.kept_initial else ""))
        for name, value in self.evaluation.items():
            lines.append(f"{name}: {value:.4f}")
        lines.append(f"saved to {self.out}" if self.out else "not saved (no --out)")
        return "\n".join(lines)


def run(config: JPQTrainConfig, *, progress: bool | None = True) -> JPQTrainOutcome:
    """Build the starting PQ index, train it as ``config`` says, evaluate and save it."""
    import numpy as np

    from rankstack.data.beir import Collection, default_data_root
    from rankstack.encode.base import cached_encode, load_encoder
    from rankstack.evaluate import evaluate
    from rankstack.hardware import torch_threads
    from rankstack.recipes.reranker_data import split_queries
    from rankstack.retrieve.dense_index import KIND, DenseIndex
    from rankstack.retrieve.jpq import save_jpq_index
    from rankstack.retrieve.jpq_train import encode_queries, search_run, train_jpq
    from rankstack.storage import check_output_folder

    t0 = time.perf_counter()
    cfg = config
    collection = Collection(cfg.collection, data_root=cfg.data_root)
    inputs = (Path(collection.path), Path(cfg.data_root) if cfg.data_root else default_data_root())
    if cfg.out is not None:
        check_output_folder(cfg.out, kind=KIND, overwrite=cfg.overwrite, inputs=inputs)
    queries, qrels = collection.queries(cfg.split), collection.qrels(cfg.split)
    train_q, val_q = split_queries(list(queries.qids), cfg.validation, seed=cfg.seed)
    with torch_threads(cfg.threads):
        enc = load_encoder(cfg.encoder, precision=cfg.precision, threads=cfg.threads)
        if enc.dim % cfg.m:  # refuse before minutes of corpus encoding, not after
            raise InputError(f"JPQ: --m {cfg.m} does not divide the encoder's dimension {enc.dim}",
                             fix=f"choose m among {[d for d in range(1, enc.dim + 1) if enc.dim % d == 0]}")
        docs = list(collection.corpus())
        if not docs:
            raise InputError("JPQ: the collection has no documents", path=collection.corpus_path)
        vectors = cached_encode(enc, [d.contents for d in docs], [d.docid for d in docs], cfg.cache_dir)
        index = DenseIndex.build(vectors, [d.docid for d in docs], enc.encoder_id, index="opq" if cfg.opq else "pq",
                                 m=cfg.m, nbits=8, seed=cfg.seed, threads=cfg.threads or 0)
        del vectors
        evaluation: dict[str, float] = {}
        test_q = test_qrels = test_vecs = None
        if cfg.eval_split:
            test_q, test_qrels = collection.queries(cfg.eval_split), collection.qrels(cfg.eval_split)
            test_vecs = cached_encode(enc, list(test_q.texts), list(test_q.qids), cfg.cache_dir, progress=False)
            run0 = search_run(index, list(test_q.qids), test_vecs, 100)
            evaluation[f"{cfg.eval_split} nDCG@10 starting {index.params['type']}"] = \
                evaluate(run0, test_qrels, ["nDCG@10"]).mean["nDCG@10"]
        qvecs = None if cfg.train_encoder else cached_encode(enc, list(queries.texts), list(queries.qids),
                                                              cfg.cache_dir, progress=False)
        query_encoder = None
        if cfg.train_encoder:
            if not hasattr(enc, "model"):
                raise InputError(f"JPQ: --train-encoder needs a sentence-transformers encoder, got {enc.backend}",
                                 fix="use --encoder minilm or a sentence-transformers folder")
            query_encoder = enc.model
        fit = train_jpq(index, queries, qrels, train_qids=train_q, val_qids=val_q, qvecs=qvecs,
                        query_encoder=query_encoder, loss=cfg.loss, scale=cfg.scale, depth=cfg.depth,
                        epochs=cfg.epochs, max_steps=cfg.max_steps, batch_size=cfg.batch_size, lr=cfg.lr,
                        encoder_lr=cfg.encoder_lr, validate_every=cfg.validate_every, patience=cfg.patience,
                        time_budget=None if cfg.time_budget is None else 60.0 * cfg.time_budget, seed=cfg.seed,
                        threads=cfg.threads, progress=progress)
        if cfg.eval_split and test_q is not None:
            tv = test_vecs if query_encoder is None else encode_queries(fit.module, list(test_q.texts))
            run1 = search_run(index, list(test_q.qids), tv, 100)
            evaluation[f"{cfg.eval_split} nDCG@10 JPQ"] = evaluate(run1, test_qrels, ["nDCG@10"]).mean["nDCG@10"]
    jpq_info = {"config": to_dict(cfg), "trainer": fit.trainer_config, "steps": fit.steps,
                "initial_validation": fit.initial_validation, "best_validation": fit.best_validation,
                "kept_initial": fit.kept_initial, "base_encoder_id": enc.encoder_id,
                "query_encoder_trained": cfg.train_encoder}
    if cfg.out is not None:
        save_jpq_index(index, cfg.out, encoder_spec=cfg.encoder, query_encoder=query_encoder, jpq=jpq_info,
                       encoder_backend=enc.backend, precision=enc.precision, overwrite=cfg.overwrite,
                       inputs=inputs)
    return JPQTrainOutcome(out=None if cfg.out is None else str(cfg.out),
                           bytes_per_doc=float(index.params["bytes_per_vector"]), index_type=index.params["type"],
                           train_queries=len(train_q), validation_queries=len(val_q), steps=fit.steps,
                           train_seconds=fit.seconds, seconds=time.perf_counter() - t0,
                           initial_validation=fit.initial_validation, best_validation=fit.best_validation,
                           kept_initial=fit.kept_initial, evaluation={k: float(v) for k, v in evaluation.items()})

