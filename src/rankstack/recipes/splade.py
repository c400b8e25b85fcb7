"""Train a SPLADE model, full or inference-free, by distillation (``rankstack train splade``).

Steps: BM25 over the training split; a seeded validation slice of the *training* queries; one list per
judged positive (the positive + ``n_negatives`` BM25 negatives from the top ``negative_depth``); teacher
scores for every pair (cross-encoder, or the heterogeneous dense + sparse ensemble; computed once and
cached); the shared :class:`~rankstack.train.trainer.Trainer` with Margin-MSE or listwise KL plus the
FLOPS or IDF-aware FLOPS regulariser (quadratic lambda warm-up), validating nDCG@10 of reranking the
BM25 top 20 of the held-out queries. Papers: SPLADE v2 (Formal et al., 2021); FLOPS (Paria et al.,
2020); inference-free SPLADE and IDF-aware FLOPS (Geng, Ru & Yang, 2024). The model folder
(safetensors + tokenizer + manifest of kind ``splade-model``) loads with ``splade(model=DIR)`` and
``splade_if(model=DIR)``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rankstack.errors import InputError
from rankstack.recipes.config import option, to_dict

__all__ = ["SpladeTrainConfig", "SpladeTrainReport", "run", "save_splade_model"]

log = logging.getLogger(__name__)

DEFAULT_TEACHER = ".cache/models/ce-scifact-v2"


@dataclass(frozen=True)
class SpladeTrainConfig:
    """Everything that defines a SPLADE training run (stored in the model's manifest).

    Defaults: start from splade-tiny, Margin-MSE from the scifact cross-encoder over 1 positive + 7
    BM25 negatives (top 30), AdamW 2e-5, FLOPS lambdas of SPLADE++ scale (documents 8e-3, queries
    1e-2) ramped quadratically over the first third of the steps.
    """

    collection: str = option(help="a BEIR folder, or a collection name under the data root (e.g. scifact)")
    out: Path = option(help="model folder to write (atomically); an existing SPLADE model needs --overwrite")
    data_root: str | None = option(None, help="folder holding collections by name ($RANKSTACK_DATA or ../shared/data)")
    split: str = option("train", help="qrels split to train on (validation queries are held out of it)")
    overwrite: bool = option(False, help="replace a SPLADE model already saved at --out")
    base_model: str = option("splade-tiny", help="'splade-tiny' or a SPLADE/BERT-MLM model folder")
    inference_free: bool = option(False, help="train documents only; queries are idf-weighted tokens (Geng et al. 2024)")
    regulariser: Literal["flops", "idf-flops"] = option("flops", help="document sparsity regulariser")
    lambda_d: float = option(8e-3, help="weight of the document regulariser after warm-up")
    lambda_q: float = option(1e-2, help="weight of the query FLOPS after warm-up (full SPLADE only)")
    lambda_warmup: float = option(0.33, help="share of the steps over which the lambdas ramp up quadratically")
    loss: Literal["margin_mse", "listwise_kl"] = option("margin_mse", help="distillation loss")
    teacher: Literal["cross-encoder", "ensemble"] = option("cross-encoder", help="cross-encoder, or the paper's "
                                                                                 "dense + sparse ensemble")
    teacher_model: str = option(DEFAULT_TEACHER, help="cross-encoder folder of the cross-encoder teacher")
    n_negatives: int = option(7, help="BM25 negatives per positive")
    negative_depth: int = option(30, help="sample negatives from this BM25 top k")
    max_queries: int | None = option(None, help="train on a seeded subset of the queries")
    validation: int = option(60, help="training queries held out for validation")
    validate_every: int | None = option(None, help="steps between validations (none: every epoch)")
    patience: int | None = option(3, help="stop after this many validations without improvement")
    epochs: int = option(2, help="passes over the training lists")
    max_steps: int | None = option(None, help="stop after this many optimiser steps")
    batch_size: int = option(8, help="lists per step")
    lr: float = option(2e-5, help="learning rate (AdamW)")
    max_length: int = option(256, help="tokens per document")
    doc_top_k: int = option(256, help="terms kept per document at indexing/validation")
    precision: Literal["auto", "bf16", "fp32"] = option("auto", help="auto = bf16 autocast where the CPU has it")
    threads: int | None = option(None, help="torch threads while training (none: leave torch's choice)")
    seed: int = option(0, help="seeds the validation split, negatives, data order and dropout")
    time_budget_minutes: float | None = option(None, flag="--time-budget", metavar="MINUTES",
                                               help="stop training after this many minutes (keeps the best state)")
    report: Path | None = option(None, help="write the training report as JSON")
    cache_dir: Path | None = option(Path(".cache/rankstack"), help="cache of BM25, expansions and teacher scores "
                                                                   "('none' disables caching)")

    def __post_init__(self) -> None:
        for name in ("n_negatives", "negative_depth", "epochs", "batch_size", "max_length", "doc_top_k"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        for name in ("lambda_d", "lambda_q"):
            if getattr(self, name) < 0:
                raise InputError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.lambda_warmup <= 1:
            raise InputError(f"--lambda-warmup must be in [0, 1], got {self.lambda_warmup}")
        if self.validation < 0:
            raise InputError(f"--validation must be 0 or more, got {self.validation}")
        if self.regulariser == "idf-flops" and not self.inference_free:
            raise InputError("--regulariser idf-flops is defined for inference-free models",
                             fix="add --inference-free, or use --regulariser flops")


@dataclass
class SpladeTrainReport:
    model_dir: str
    train_queries: int
    validation_queries: int
    lists: int
    steps: int
    seconds: float
    precision: str
    best_validation: float | None
    validation_history: list[float]
    stopped_early: bool
    stopped_by_budget: bool
    inference_free: bool
    regulariser: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_text(self) -> str:
        best = "n/a" if self.best_validation is None else f"{self.best_validation:.4f}"
        kind = "inference-free SPLADE" if self.inference_free else "SPLADE"
        return (f"wrote {self.model_dir}: {kind}, {self.lists} lists x {self.steps} steps in {self.seconds / 60:.1f} min "
                f"({self.precision}, {self.regulariser}); validation nDCG@10 {best} on {self.validation_queries} "
                "held-out queries")


def save_splade_model(module: Any, tokenizer: Any, path: str | Path, params: dict[str, Any], *,
                      overwrite: bool = False, inputs: tuple[Path, ...] = ()) -> dict:
    """safetensors + tokenizer + manifest (kind ``splade-model``), atomically."""
    import json

    from rankstack.encode.splade import MODEL_FORMAT, MODEL_KIND
    from rankstack.storage import atomic_directory, write_manifest

    with atomic_directory(path, overwrite=overwrite, inputs=inputs) as tmp:
        module.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        return write_manifest(tmp, MODEL_KIND, MODEL_FORMAT, json.loads(json.dumps(params, default=str)),
                              libraries=["torch", "transformers", "tokenizers", "safetensors"])


def _lists(cfg: SpladeTrainConfig, collection: Any, queries: Any, qrels: Any, train_q: list[str], fs_run: Any):
    from rankstack.recipes.splade_fit import Group
    from rankstack.train.negatives import positives_of, sample_negatives

    negs = sample_negatives(queries.subset(train_q), qrels, cfg.n_negatives, "bm25", run=fs_run,
                            all_docids=list(collection.documents()), depth=cfg.negative_depth, seed=cfg.seed)
    pos = positives_of(qrels)
    lists = []
    for qid in train_q:
        for d in sorted(pos.get(qid, {})):
            lists.append(Group(qid, queries[qid], [d, *negs.get(qid, [])], []))
    if not lists:
        raise InputError(f"no training list: none of the {len(train_q)} {cfg.split} queries has a judged positive",
                         fix="check the split's qrels")
    return lists


def run(config: SpladeTrainConfig, *, progress: bool | None = True) -> SpladeTrainReport:
    """Train as ``config`` says and save the model folder to ``config.out``."""
    import torch

    from rankstack.data.beir import Collection, default_data_root
    from rankstack.encode.splade import MODEL_KIND, SpladeEncoder
    from rankstack.hardware import torch_threads
    from rankstack.losses import get_loss
    from rankstack.recipes.reranker_data import split_queries
    from rankstack.recipes.splade_fit import (Group, SpladeCollator, SpladeListModel, SpladeObjective,
                                              SpladeValidator, ensemble_labels, teacher_scores)
    from rankstack.storage import atomic_write_text, check_output_file, check_output_folder
    from rankstack.train.negatives import first_stage_run
    from rankstack.train.trainer import Trainer

    t0 = time.perf_counter()
    cfg = config
    collection = Collection(cfg.collection, data_root=cfg.data_root)
    inputs = (Path(collection.path), Path(cfg.data_root) if cfg.data_root else default_data_root())
    check_output_folder(cfg.out, kind=MODEL_KIND, overwrite=cfg.overwrite, inputs=inputs)
    if cfg.report is not None:
        check_output_file(cfg.report, inputs)
    queries, qrels = collection.queries(cfg.split), collection.qrels(cfg.split)
    train_q, val_q = split_queries(list(queries.qids), cfg.validation, seed=cfg.seed)
    if cfg.max_queries is not None and cfg.max_queries < len(train_q):
        rng = np.random.default_rng(cfg.seed + 1)
        train_q = sorted(train_q[i] for i in rng.choice(len(train_q), cfg.max_queries, replace=False))
    fs_run = first_stage_run(collection, queries, "bm25", k=max(cfg.negative_depth, 20), cache_dir=cfg.cache_dir)
    lists = _lists(cfg, collection, queries, qrels, train_q, fs_run)
    pairs = [(g.qid, g.query, d) for g in lists for d in g.docids]
    with torch_threads(cfg.threads):
        scores = teacher_scores(pairs, cfg.teacher, collection, cfg.cache_dir, teacher_model=cfg.teacher_model,
                                base_model=cfg.base_model, precision=cfg.precision, threads=cfg.threads)
        labelled, pos = [], 0
        for g in lists:
            n = len(g.docids)
            y = ensemble_labels([s[pos:pos + n] for s in scores]) if scores.ndim == 2 else scores[pos:pos + n]
            labelled.append(Group(g.qid, g.query, g.docids, [float(v) for v in y]))
            pos += n
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            encoder = SpladeEncoder(cfg.base_model, max_length=cfg.max_length, doc_top_k=cfg.doc_top_k,
                                    precision=cfg.precision, threads=cfg.threads, progress=False)
        idf = encoder.corpus_idf([d.contents for d in collection.corpus()]) if cfg.inference_free else None
        module = SpladeListModel(encoder, idf)
        steps_per_epoch = int(np.ceil(len(labelled) / cfg.batch_size))
        total = steps_per_epoch * cfg.epochs if cfg.max_steps is None else min(cfg.max_steps, steps_per_epoch * cfg.epochs)
        trainer_ref: dict[str, Any] = {}
        objective = SpladeObjective(get_loss(cfg.loss), module, cfg.regulariser, cfg.lambda_d, cfg.lambda_q,
                                    warmup_steps=int(cfg.lambda_warmup * total), step_fn=lambda: trainer_ref["t"].step,
                                    idf=idf)
        validator = None
        if val_q:
            validator = SpladeValidator(encoder, fs_run.restrict(val_q).with_queries(queries), qrels.restrict(val_q),
                                        collection, cfg.inference_free, idf)
        trainer = Trainer(module, objective, lr=cfg.lr, weight_decay=0.01, warmup_ratio=0.1, epochs=cfg.epochs,
                          max_steps=cfg.max_steps, batch_size=cfg.batch_size, precision=cfg.precision, seed=cfg.seed,
                          validate_every=cfg.validate_every, validate_fn=validator,
                          patience=cfg.patience if validator else None, num_threads=cfg.threads, progress=progress,
                          time_budget=None if cfg.time_budget_minutes is None else 60.0 * cfg.time_budget_minutes)
        trainer_ref["t"] = trainer
        log.info("training SPLADE (%s, %s) on %d lists of %d queries; validating on %d",
                 "inference-free" if cfg.inference_free else "full", cfg.regulariser, len(labelled), len(train_q),
                 len(val_q))
        fit = trainer.fit(labelled, SpladeCollator(encoder, collection.doc_texts, cfg.inference_free))
    encoder.model.eval()
    report = SpladeTrainReport(model_dir=str(cfg.out), train_queries=len(train_q), validation_queries=len(val_q),
                               lists=len(labelled), steps=fit.steps, seconds=time.perf_counter() - t0,
                               precision=fit.precision, best_validation=fit.best_value,
                               validation_history=list(validator.history) if validator else [],
                               stopped_early=fit.stopped_early, stopped_by_budget=fit.stopped_by_budget,
                               inference_free=cfg.inference_free, regulariser=cfg.regulariser)
    params = {"base_model": cfg.base_model, "inference_free": cfg.inference_free, "max_length": cfg.max_length,
              "doc_top_k": cfg.doc_top_k, "training": {"config": to_dict(cfg), "trainer": trainer.config(),
                                                       "report": report.to_dict()}}
    save_splade_model(encoder.model, encoder.tokenizer, cfg.out, params, overwrite=cfg.overwrite, inputs=inputs)
    if cfg.report is not None:
        import json

        atomic_write_text(cfg.report, json.dumps(report.to_dict(), indent=2) + "\n", inputs=inputs, kind="json")
    return report
