"""The two halves of :func:`rankstack.recipes.reranker.run`: training data, then the fit.

Why two functions: :func:`prepare` needs no model (first stage, validation split, negatives,
groups) and runs with torch's default threads; :func:`train` builds the cross-encoder, applies the
false-negative filter and distillation and runs the shared Trainer, under the recipe's thread
count. The order of every seeded draw is the one the recipe has always used, and a fresh head is
initialised from the seed too, so a seeded run gives the same loss curve step for step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rankstack.errors import InputError
from rankstack.recipes.reranker_data import (DistillationMix, Group, PairCollator, PairListModel, RerankValidator,
                                             attach_easiness, attach_teacher_scores, build_groups, head_prefixes,
                                             split_queries)

__all__ = ["TrainingData", "Fitted", "prepare", "train"]

log = logging.getLogger(__name__)


@dataclass
class TrainingData:
    """Queries, the validation split, the first-stage run and the training groups."""

    queries: Any
    qrels: Any
    train_q: list[str]
    val_q: list[str]
    fs_run: Any
    groups: list[Group]
    trainer_epochs: int
    fs_depth: int | None = None  # the k the first stage was asked for (None: its longest list)


@dataclass
class Fitted:
    """The trained model and what the Trainer reported."""

    model: Any
    tokenizer: Any
    base_model: str
    fit: Any
    trainer_config: dict[str, Any]
    groups: list[Group]
    pairs_per_epoch: int
    filter_report: dict[str, Any] | None
    validation_history: list[float] = field(default_factory=list)
    parameters: dict[str, int] | None = None  # {"trainable": n, "total": n}
    lora: dict[str, Any] | None = None  # the LoRA settings, when --lora-rank was given


def prepare(cfg: Any, collection: Any) -> TrainingData:
    """First stage over the split, a seeded validation slice, mined negatives and the groups."""
    from rankstack.train.negatives import first_stage_run, sample_negatives

    queries = collection.queries(cfg.split)
    qrels = collection.qrels(cfg.split)
    train_q, val_q = split_queries(list(queries.qids), cfg.validation, seed=cfg.seed)
    if cfg.max_queries is not None and cfg.max_queries < len(train_q):
        rng = np.random.default_rng(cfg.seed + 1)
        train_q = sorted(train_q[i] for i in rng.choice(len(train_q), cfg.max_queries, replace=False))
    depth = max(cfg.negative_depth, cfg.validation_depth)
    log.info("first stage %s over %d %s queries (top %d)", cfg.first_stage, len(queries), cfg.split, depth)
    cache_dir = cfg.cache_dir
    fs_run = first_stage_run(collection, queries, cfg.first_stage, k=depth, cache_dir=cache_dir)
    if cfg.negatives == "random":
        neg_run = None
    elif cfg.negatives == cfg.first_stage:
        neg_run = fs_run
    else:
        neg_run = first_stage_run(collection, queries, cfg.negatives, k=cfg.negative_depth, cache_dir=cache_dir)
    all_docids = list(collection.documents())
    train_queries = queries.subset(train_q)
    # With resample_negatives every epoch gets its own negatives (seed + epoch): more distinct hard
    # negatives for the same compute, which matters when judged queries are few (scifact: ~800).
    rounds = cfg.epochs if cfg.resample_negatives else 1
    groups: list[Group] = []
    for r in range(rounds):
        negs = sample_negatives(train_queries, qrels, cfg.n_negatives, cfg.negatives, run=neg_run,
                                all_docids=all_docids, depth=cfg.negative_depth, seed=cfg.seed + r)
        groups.extend(build_groups(train_queries, qrels, negs, first_stage=fs_run, graded=cfg.graded))
    if not groups:
        raise InputError(f"no training group: none of the {len(train_q)} {cfg.split} queries has a judged positive",
                         fix="check the split's qrels")
    if cfg.curriculum:
        groups = attach_easiness(groups, cfg.curriculum)
    # The Trainer then makes one pass over all rounds; validate once per original epoch by default.
    trainer_epochs = 1 if cfg.resample_negatives else cfg.epochs
    return TrainingData(queries, qrels, train_q, val_q, fs_run, groups, trainer_epochs, fs_depth=depth)


def first_score_depth(data: TrainingData) -> int:
    """How deep the training groups' first-stage scores were min-max normalised: the first stage's k."""
    if data.fs_depth is not None:
        return data.fs_depth
    return max((len(d) for _, d, _ in data.fs_run.groups()), default=0)


def _filter(cfg: Any, collection: Any, groups: list[Group]) -> tuple[list[Group], dict[str, Any] | None]:
    """The false-negative filter (Xu et al., CIKM 2022) with a dense or cross-encoder teacher."""
    from rankstack.rerank.cross_encoder import CrossEncoderReranker
    from rankstack.train.negatives import DenseTeacher, FalseNegativeFilter

    if not cfg.fn_filter:
        return groups, None
    if cfg.fn_filter == "dense":
        teacher: Any = DenseTeacher("minilm", collection=collection, cache_dir=cfg.cache_dir)
    else:
        teacher = CrossEncoderReranker(cfg.fn_filter, documents=collection, precision=cfg.precision)
    groups, fr = FalseNegativeFilter(teacher, mode=cfg.fn_mode, margin=cfg.fn_margin).apply(groups, collection.doc_texts)
    log.info("%s", fr)
    return groups, fr.to_dict()


def train(cfg: Any, collection: Any, data: TrainingData, *, progress: bool | None = True,
          loss: Any = None, after_filter: Any = None) -> Fitted:
    """Build the cross-encoder, filter/distil the groups and run the shared Trainer.

    Hooks for recipes that build their own groups (``adapt``): ``after_filter(groups) -> groups`` runs
    after the false-negative filter (e.g. to attach a teacher's scores to the items that are left),
    and ``loss`` replaces the config's loss (a callable, e.g. GPL's margin-MSE mix).
    """
    from rankstack.recipes.reranker import loss_spec
    from rankstack.rerank.cross_encoder import CrossEncoderReranker
    from rankstack.train.curriculum import Curriculum
    from rankstack.train.negatives import first_stage_run
    from rankstack.train.lora import parameter_counts
    from rankstack.train.trainer import Trainer

    import torch

    # A base without a ranking head ('minilm') gets a fresh one, drawn from torch's process-wide
    # generator, which torch seeds at random per process: draw it from the run's seed instead.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        reranker = CrossEncoderReranker(cfg.base_model, documents=collection, max_length=cfg.max_length,
                                        precision=cfg.precision, threads=cfg.threads)
        lora = _lora(cfg, reranker.model)
    hf_model, tokenizer = reranker.model if lora is None else lora[0], reranker.tokenizer
    if getattr(cfg, "attention_dropout", None) is not None:
        from rankstack.recipes.reranker_data import set_attention_dropout

        set_attention_dropout(hf_model, cfg.attention_dropout)
    if getattr(cfg, "freeze_layers", 0):
        from rankstack.recipes.reranker_data import freeze_bottom_layers

        log.info("froze %d parameters (embeddings + %d bottom blocks)",
                 freeze_bottom_layers(hf_model, cfg.freeze_layers), cfg.freeze_layers)
    groups, filter_report = _filter(cfg, collection, data.groups)
    if after_filter is not None:
        groups = after_filter(groups)
    if loss is None:
        loss = loss_spec(cfg.loss)
    if cfg.distill:
        log.info("distillation teacher: %s (top %d), weight %.2f", cfg.distill, cfg.distill_depth, cfg.distill_weight)
        teacher_run = first_stage_run(collection, data.queries.subset(data.train_q), spec=cfg.distill,
                                      k=cfg.distill_depth, cache_dir=cfg.cache_dir)
        groups = attach_teacher_scores(groups, teacher_run)
        loss = DistillationMix(loss, cfg.distill_weight, cfg.distill_temperature)

    model = PairListModel(hf_model)
    epochs = data.trainer_epochs
    total_steps = int(np.ceil(np.ceil(len(groups) / cfg.batch_size) / cfg.grad_accum)) * epochs
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    validate_every = cfg.validate_every
    if validate_every is None and cfg.resample_negatives and cfg.epochs > 1:
        validate_every = max(1, total_steps // cfg.epochs)
    trainer_ref: dict[str, Any] = {}
    collator = PairCollator(tokenizer, collection.doc_texts, cfg.max_length,
                            curriculum=Curriculum(cfg.curriculum_fraction) if cfg.curriculum else None,
                            total_steps=total_steps, step_fn=lambda: trainer_ref["t"].step,
                            first_score_in_input=getattr(cfg, "first_score_in_input", False))
    validator = None
    if data.val_q:
        validator = RerankValidator(hf_model, tokenizer, data.fs_run.restrict(data.val_q).with_queries(data.queries),
                                    data.qrels.restrict(data.val_q), collection, max_length=cfg.max_length,
                                    depth=cfg.validation_depth, precision=cfg.precision,
                                    first_score_in_input=getattr(cfg, "first_score_in_input", False),
                                    first_score_depth=first_score_depth(data))
    head = {p: cfg.head_lr_multiplier for p in head_prefixes(model)} if cfg.head_lr_multiplier != 1 else None
    trainer = Trainer(model, loss, lr=cfg.lr, weight_decay=cfg.weight_decay, warmup_ratio=cfg.warmup_ratio,
                      epochs=epochs, max_steps=cfg.max_steps, batch_size=cfg.batch_size,
                      grad_accum=cfg.grad_accum, grad_clip=cfg.grad_clip, precision=cfg.precision, seed=cfg.seed,
                      validate_every=validate_every, validate_fn=validator,
                      patience=cfg.patience if validator else None, checkpoint_dir=cfg.checkpoint_dir,
                      param_groups=head, num_threads=cfg.threads, progress=progress,
                      time_budget=None if cfg.time_budget_minutes is None else 60.0 * cfg.time_budget_minutes,
                      fused_optimizer=None if getattr(cfg, "fused_optimizer", False) else False,
                      compile=getattr(cfg, "compile", False),
                      bucket_key=collator.group_length if getattr(cfg, "bucket", False) else None)
    trainer_ref["t"] = trainer
    pairs = sum(len(g) for g in groups)
    pairs_per_epoch = int(round(pairs * epochs / cfg.epochs))  # resampled rounds are the epochs
    log.info("training on %d groups (%d pairs, ~%d per epoch) of %d queries; validating on %d queries",
             len(groups), pairs, pairs_per_epoch, len(data.train_q), len(data.val_q))
    fit = trainer.fit(groups, collator)
    hf_model.eval()
    return Fitted(model=hf_model, tokenizer=tokenizer, base_model=reranker.base_model, fit=fit,
                  trainer_config=trainer.config(), groups=groups, pairs_per_epoch=pairs_per_epoch,
                  filter_report=filter_report, validation_history=list(validator.history) if validator else [],
                  parameters=parameter_counts(hf_model), lora=None if lora is None else lora[1])


def _lora(cfg: Any, hf_model: Any) -> tuple[Any, dict[str, Any]] | None:
    """With ``--lora-rank``: the model wrapped with LoRA adapters (base frozen, fresh head trained fully)."""
    from rankstack.recipes.reranker import lora_settings
    from rankstack.train.lora import add_lora

    if getattr(cfg, "lora_rank", None) is None:
        return None
    head = tuple(dict.fromkeys(p.rstrip(".").rsplit(".", 1)[-1] for p in head_prefixes(hf_model)))
    settings = lora_settings(cfg, head)
    return add_lora(hf_model, settings, task_type="SEQ_CLS"), settings.to_dict()
