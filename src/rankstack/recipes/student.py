"""Distil a cross-encoder into a smaller student (``rankstack train student``).

Why: a 2-4 layer cross-encoder scores pairs several times faster than the 6-layer teacher, so a
user can trade a stated nDCG cost for speed (issue 14). The student starts from k of the teacher's
layers (:mod:`rankstack.recipes.student_model`, DistilBERT-style initialisation, Sanh et al., 2019)
and learns the teacher's scores on the reranker recipe's training groups (1 positive + mined
negatives per judged query) with Margin-MSE ("Improving Efficient Neural Ranking Models with
Cross-Architecture Knowledge Distillation", Hofstätter et al., 2020) or a listwise KL (Hinton et
al., 2015), optionally mixed with the judgements' own loss. The teacher scores every training pair
once, cached on disk by content (:mod:`rankstack.recipes.student_teacher`). Everything else
(negatives, validation by the real ``evaluate``, early stopping, time budget, atomic save) is the
reranker recipe's, so the student is an ordinary cross-encoder folder that ``rankstack rerank
--model`` and ``sentence_transformers.CrossEncoder`` load.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rankstack.errors import InputError
from rankstack.recipes.config import option, to_dict

__all__ = ["StudentConfig", "StudentReport", "run"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudentConfig:
    """A distillation run: teacher, student size, and the reranker recipe's data and optimiser settings."""

    teacher: Path = option(help="the teacher: a cross-encoder folder (e.g. from 'rankstack train reranker')")
    collection: str = option(help="a BEIR folder, or a collection name under the data root (e.g. scifact)")
    out: Path = option(help="student model folder to write (atomically); an existing model needs --overwrite")
    layers: int = option(2, help="transformer layers of the student (the teacher's MiniLM has 6)")
    layer_map: str = option("spread", metavar="MAP", help="which teacher layers to start from: 'spread' (evenly "
                                                          "spaced, first and last), 'first', or e.g. '0,2,4'")
    init: Literal["teacher", "minilm"] = option("teacher", help="copy the layers (and head) of the teacher, or of "
                                                               "all-MiniLM-L6-v2 with a fresh head")
    kd_loss: Literal["margin_mse", "listwise_kl"] = option("margin_mse", help="distillation loss on the teacher's "
                                                                             "scores")
    temperature: float = option(1.0, help="temperature of listwise_kl")
    label_weight: float = option(0.0, help="weight (0-1) of --label-loss on the judgements, mixed with the "
                                           "distillation loss")
    label_loss: str = option("listnet", metavar="SPEC", help="loss on the judgements when --label-weight > 0")
    teacher_precision: Literal["auto", "fp32", "bf16", "bf16-weights"] = option(
        "bf16-weights", help="how the teacher scores the training pairs (bf16 paths fall back to fp32 without "
                             "native bf16)")
    data_root: str | None = option(None, help="folder holding collections by name ($RANKSTACK_DATA or ../shared/data)")
    split: str = option("train", help="qrels split to train on (validation queries are held out of it)")
    overwrite: bool = option(False, help="replace a cross-encoder already saved at --out")
    first_stage: str = option("bm25", help="first stage for negatives and validation")
    negatives: Literal["bm25", "dense", "random"] = option("bm25", help="where negatives come from")
    n_negatives: int = option(7, help="negatives per positive")
    negative_depth: int = option(30, help="sample negatives from this top k")
    resample_negatives: bool = option(False, help="fresh negatives for every epoch (more pairs for the teacher "
                                                  "to score)")
    max_queries: int | None = option(None, help="train on a seeded subset of the queries")
    validation: int = option(60, help="training queries held out for validation")
    validation_depth: int = option(30, help="rerank this top k of the first stage to validate")
    validate_every: int | None = option(None, help="steps between validations (none: every epoch)")
    patience: int | None = option(2, help="stop after this many validations without improvement")
    epochs: int = option(2, help="passes over the training groups")
    max_steps: int | None = option(None, help="stop after this many optimiser steps")
    batch_size: int = option(2, help="query groups per micro-batch")
    grad_accum: int = option(4, help="optimiser step every N micro-batches")
    lr: float = option(1e-4, help="learning rate (AdamW)")
    head_lr_multiplier: float | None = option(None, help="learning-rate multiplier of the head (none: 1 when "
                                                         "copied from the teacher, 10 for a fresh one)")
    warmup_ratio: float = option(0.1, help="share of the steps with linear warm-up")
    max_length: int | None = option(None, help="tokens per pair (none: the teacher's)")
    precision: Literal["auto", "bf16", "fp32"] = option("auto", help="student training precision (auto = bf16 "
                                                                     "autocast where the CPU has it)")
    threads: int | None = option(None, help="torch threads (none: leave torch's choice)")
    seed: int = option(0, help="seeds the split, negatives, data order, dropout and a fresh head")
    fn_filter: str | None = option(None, metavar="TEACHER", help="false-negative filter teacher ('dense' or a "
                                                                 "cross-encoder folder), as in train reranker")
    bucket: bool = option(False, help="length-bucketed micro-batches")
    attention_dropout: float | None = option(None, help="attention-probability dropout while training (none: "
                                                        "the teacher's; 0 runs torch's fused attention)")
    fused_optimizer: bool = option(False, help="torch's fused AdamW step where available")
    time_budget_minutes: float | None = option(None, flag="--time-budget", metavar="MINUTES",
                                               help="stop training after this many minutes (keeps the best state)")
    checkpoint_dir: Path | None = option(None, help="also keep the trainer's best checkpoint there")
    report: Path | None = option(None, help="write the report as JSON")
    cache_dir: Path | None = option(Path(".cache/rankstack"), help="first-stage runs and the teacher's scores are "
                                                                   "cached here ('none' disables caching)")

    def __post_init__(self) -> None:
        if isinstance(self.layers, bool) or not isinstance(self.layers, int) or self.layers < 1:
            raise InputError(f"--layers must be a positive integer, got {self.layers!r}")
        if not 0.0 <= self.label_weight <= 1.0:
            raise InputError(f"--label-weight must be in [0, 1], got {self.label_weight!r}")
        if self.label_weight == 1.0:
            raise InputError("--label-weight 1 leaves no distillation", fix="use 'rankstack train reranker' instead")
        if self.layer_map not in ("spread", "first"):
            from rankstack.recipes.student_model import choose_layers

            choose_layers(64, self.layers, self.layer_map)  # a malformed list fails now; range: once loaded
        _reranker_config(self, Path("init"))  # the shared options are checked by the reranker recipe's config


def _reranker_config(cfg: StudentConfig, init: Path, max_length: int = 192) -> Any:
    """The reranker recipe's config that trains the student from the ``init`` folder."""
    from rankstack.recipes.reranker import RerankerTrainConfig

    shared = {f.name for f in dataclasses.fields(RerankerTrainConfig)} & {f.name for f in dataclasses.fields(cfg)}
    kw = {name: getattr(cfg, name) for name in shared}
    head = cfg.head_lr_multiplier if cfg.head_lr_multiplier is not None else (1.0 if cfg.init == "teacher" else 10.0)
    kw.update(base_model=str(init), loss=cfg.label_loss, head_lr_multiplier=head, graded=False, curriculum=None,
              distill=None, max_length=cfg.max_length or max_length, report=None)
    return RerankerTrainConfig(**kw)


@dataclass
class StudentReport:
    """What :func:`run` did: the reranker recipe's report plus the student's provenance."""

    train: Any
    student: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"train": self.train.to_dict(), "student": self.student}

    def to_text(self) -> str:
        s = self.student
        cache = "cached" if s.get("teacher_scores_cached") else f"{s.get('teacher_seconds', 0):.0f}s"
        return (f"{s['layers']}-layer student (teacher layers {s['layer_ids']}, {s['kd_loss']}); teacher scores "
                f"of {s.get('teacher_pairs', 0)} pairs: {cache}\n" + self.train.to_text())


def run(config: StudentConfig, *, progress: bool | None = True) -> StudentReport:
    """Distil ``config.teacher`` into a ``config.layers``-layer student saved at ``config.out``."""
    import torch

    from rankstack.recipes import reranker
    from rankstack.recipes.reranker_data import DistillationMix
    from rankstack.recipes.student_model import write_student_init
    from rankstack.rerank.cross_encoder import CrossEncoderReranker
    from rankstack.storage import atomic_write_text, check_output_file, fingerprint

    t0 = time.perf_counter()
    if not Path(config.teacher).is_dir():
        raise InputError("teacher folder does not exist", path=config.teacher,
                         fix="pass a cross-encoder folder from 'rankstack train reranker'")
    if config.report is not None:
        check_output_file(config.report, (Path(config.teacher),))
    teacher_fp = fingerprint(config.teacher)
    teacher = CrossEncoderReranker(str(config.teacher), precision="fp32", threads=config.threads)
    info: dict[str, Any] = {"teacher": str(config.teacher), "teacher_fingerprint": teacher_fp,
                            "layers": config.layers, "layer_map": config.layer_map, "init": config.init,
                            "kd_loss": config.kd_loss, "label_weight": config.label_weight}
    with tempfile.TemporaryDirectory(prefix="rankstack-student-") as tmp:
        init = Path(tmp) / f"student-{config.layers}-layers"
        with torch.random.fork_rng(devices=[]):  # a fresh head (init='minilm') is drawn from the seed
            torch.manual_seed(config.seed)
            source = teacher if config.init == "teacher" else CrossEncoderReranker("minilm", precision="fp32")
            info.update(write_student_init(source, init, config.layers, config.layer_map))
        max_length = teacher.max_length
        del teacher, source
        rcfg = _reranker_config(config, init, max_length)

        def with_teacher_scores(groups: list[Any]) -> list[Any]:
            from rankstack.data.beir import Collection
            from rankstack.recipes.student_teacher import attach_pair_scores, cached_teacher_scores

            collection = Collection(config.collection, data_root=config.data_root)
            scorer = CrossEncoderReranker(str(config.teacher), precision=config.teacher_precision,
                                          threads=config.threads, max_length=rcfg.max_length)
            start = time.perf_counter()

            def score(q: list[str], d: list[str]) -> Any:
                values, cached = cached_teacher_scores(scorer, teacher_fp, q, d, config.cache_dir)
                info.update(teacher_pairs=len(q), teacher_scores_cached=cached,
                            teacher_precision=scorer.precision_used)
                return values

            out = attach_pair_scores(groups, collection.doc_texts, score)
            info["teacher_seconds"] = round(time.perf_counter() - start, 1)
            return out

        loss = DistillationMix(reranker.loss_spec(config.label_loss), weight=1.0 - config.label_weight,
                               temperature=config.temperature, kd=config.kd_loss)
        training = {"student": info}  # filled in while training; stored in the manifest at the save
        report = reranker.run(rcfg, progress=progress, loss=loss, after_filter=with_teacher_scores,
                              training_info=training)
    result = StudentReport(train=report, student={**info, "seconds": round(time.perf_counter() - t0, 1)})
    if config.report is not None:
        import json

        atomic_write_text(config.report, json.dumps(result.to_dict(), indent=2, default=str) + "\n",
                          inputs=(Path(config.teacher),), kind="json")
    log.info("student config: %s", to_dict(config))
    return result
