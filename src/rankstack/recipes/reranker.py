"""Train a cross-encoder reranker on a collection's judged queries (``rankstack train reranker``).

Why a recipe: the CLI, TOML files and the service run the same steps with the same defaults,
declared once in :class:`RerankerTrainConfig`. The steps: a first stage over the training split;
a seeded validation slice of the *training* queries; mined negatives (fresh per epoch with
``resample_negatives``); optional curriculum (MacAvaney et al., SIGIR 2020), false-negative filter
(Xu et al., CIKM 2022) and listwise distillation from a first stage; the shared
:class:`~rankstack.train.trainer.Trainer` with validation by the real ``evaluate``; a model folder
that ``rankstack rerank`` and ``sentence_transformers.CrossEncoder`` load.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rankstack.errors import InputError
from rankstack.recipes.config import option, to_dict

__all__ = ["RerankerTrainConfig", "TrainReport", "run", "export_checkpoint", "loss_spec"]

log = logging.getLogger(__name__)

_POSITIVE = ("n_negatives", "negative_depth", "validation_depth", "epochs", "batch_size", "grad_accum", "max_length",
             "distill_depth")


@dataclass(frozen=True)
class RerankerTrainConfig:
    """Everything that defines a reranker training run (stored in the model's manifest).

    Defaults follow the first scifact probe: listwise softmax (ListNet with one positive = localised
    contrastive estimation, Gao, Dai & Callan, ECIR 2021) over 1 positive + 7 BM25 negatives from the
    top 30, AdamW at 5e-5 with a 10x learning rate for the fresh head, 10% warm-up, bf16 autocast
    where the CPU has it, max length 192.
    """

    collection: str = option(help="a BEIR folder, or a collection name under the data root (e.g. scifact)")
    out: Path = option(help="model folder to write (atomically); an existing model needs --overwrite")
    data_root: str | None = option(None, help="folder holding collections by name ($RANKSTACK_DATA or ../shared/data)")
    split: str = option("train", help="qrels split to train on (validation queries are held out of it)")
    overwrite: bool = option(False, help="replace a cross-encoder already saved at --out")
    base_model: str = option("minilm", help="'minilm' (all-MiniLM-L6-v2 + new head) or a local transformers folder")
    loss: str = option("listnet", metavar="SPEC", help="any registered loss, e.g. 'listnet', 'bce', 'ranknet', "
                                                       "'lambdaloss', 'listnet(temperature=0.5)'")
    first_stage: str = option("bm25", help="first stage for validation and curricula")
    negatives: Literal["bm25", "dense", "random"] = option("bm25", help="where hard negatives come from")
    n_negatives: int = option(7, help="negatives per positive (0: positives only)")
    negative_depth: int = option(30, help="sample hard negatives from this top k")
    graded: bool = option(False, help="one list per query with graded labels")
    max_queries: int | None = option(None, help="train on a seeded subset of the queries")
    validation: int = option(60, help="training queries held out for validation")
    validation_depth: int = option(30, help="rerank this top k of the first stage to validate")
    validate_every: int | None = option(None, help="steps between validations (none: every epoch)")
    patience: int | None = option(2, help="stop after this many validations without improvement")
    epochs: int = option(1, help="passes over the training groups")
    max_steps: int | None = option(None, help="stop after this many optimiser steps")
    batch_size: int = option(8, help="query groups per step")
    grad_accum: int = option(1, help="optimiser step every N batches (small batches run faster per pair on a CPU)")
    lr: float = option(5e-5, help="base learning rate (AdamW)")
    head_lr_multiplier: float = option(10.0, help="learning-rate multiplier of the fresh head (pooler + classifier)")
    weight_decay: float = option(0.01, help="decoupled weight decay of weight matrices")
    warmup_ratio: float = option(0.1, help="share of the steps with linear warm-up")
    grad_clip: float | None = option(1.0, help="max global gradient norm (none: no clipping)")
    max_length: int = option(192, help="tokens per (query, document) pair")
    precision: Literal["auto", "bf16", "fp32"] = option("auto", help="auto = bf16 autocast where the CPU has it")
    threads: int | None = option(None, help="torch threads while training (none: leave torch's choice)")
    seed: int = option(0, help="seeds the validation split, negatives, data order and dropout")
    curriculum: Literal["recip", "norm"] | None = option(
        None, help="difficulty curriculum (MacAvaney et al., SIGIR 2020)")
    curriculum_fraction: float = option(0.5, help="share of the steps over which curriculum weights reach 1")
    fn_filter: str | None = option(None, metavar="TEACHER", help="false-negative filter teacher: 'dense' or a "
                                                                 "cross-encoder folder (Xu et al., CIKM 2022)")
    fn_mode: Literal["drop", "downweight"] = option("drop", help="what the filter does with a flagged negative")
    fn_margin: float = option(0.0, help="flag a negative the teacher scores above the positive plus this")
    resample_negatives: bool = option(False, help="draw fresh negatives for every epoch instead of reusing one draw")
    distill: str | None = option(None, metavar="FIRST_STAGE", help="also distil from a first stage's scores, e.g. "
                                 "\"fuse(bm25, dense, method=combsum, norm='z-score')\" (listwise KL mixed with --loss)")
    distill_weight: float = option(0.5, help="weight of the distillation term (0-1)")
    distill_temperature: float = option(1.0, help="temperature of the distillation term")
    distill_depth: int = option(1000, help="teacher run depth")
    time_budget_minutes: float | None = option(None, flag="--time-budget", metavar="MINUTES",
                                               help="stop training after this many minutes (keeps the best "
                                                    "validated state)")
    lora_rank: int | None = option(None, help="train LoRA adapters of this rank instead of every weight (none: full "
                                               "fine-tuning); --out then holds an adapter (Hu et al., 2021)")
    lora_alpha: float | None = option(None, help="LoRA scale alpha (update scaled by alpha/rank; none: 2 x rank)")
    lora_dropout: float = option(0.1, help="dropout on the LoRA adapters' input")
    lora_targets: str = option("query,value", metavar="NAMES", help="comma-separated linear layers that get LoRA "
                                                                    "adapters (the fresh head is trained fully)")
    lora_merge: bool = option(False, help="with --lora-rank: save the merged full model instead of the adapter")
    bucket: bool = option(False, help="length-bucketed micro-batches (less padding; benchmarks/training.md)")
    fused_optimizer: bool = option(False, help="torch's fused AdamW step where this torch has one")
    compile: bool = option(False, help="torch.compile the training forward (pays compilation first)")
    attention_dropout: float | None = option(None, help="attention-probability dropout while training (none: the "
                                                        "model's, 0.1 for MiniLM; 0 lets torch run fused attention)")
    freeze_layers: int = option(0, help="freeze the embeddings and this many bottom transformer blocks (no gradient, "
                                        "no optimiser state: their backward pass is skipped; Lee et al., 2019)")
    first_score_in_input: bool = option(False, help="write the first stage's score into the model input, between "
                                                    "query and document (Askari et al., ECIR 2023), min-max normalised "
                                                    "over the first stage's top max(--negative-depth, "
                                                    "--validation-depth), the depth the model then expects")
    checkpoint_dir: Path | None = option(None, help="also keep the trainer's best checkpoint there")
    report: Path | None = option(None, help="write the training report as JSON")
    cache_dir: Path | None = option(Path(".cache/rankstack"), help="where indexes and stage outputs are cached "
                                                                   "('none' disables caching)")

    def __post_init__(self) -> None:
        for name in _POSITIVE:
            value = getattr(self, name)
            if value < 1 and not (name == "n_negatives" and value == 0):
                raise InputError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
        if self.validation < 0:
            raise InputError(f"--validation must be 0 or more, got {self.validation}")
        if not 0.0 <= self.distill_weight <= 1.0:
            raise InputError(f"distillation weight must be in [0, 1], got {self.distill_weight!r}",
                             fix="pass --distill-weight between 0 and 1")
        from rankstack.losses import get_loss

        get_loss(loss_spec(self.loss))  # an unknown loss or argument fails before any work
        if isinstance(self.freeze_layers, bool) or not isinstance(self.freeze_layers, int) or self.freeze_layers < 0:
            raise InputError(f"--freeze-layers must be 0 or a positive integer, got {self.freeze_layers!r}")
        if self.freeze_layers and self.lora_rank is not None:
            raise InputError("--freeze-layers and --lora-rank both choose what trains",
                             fix="drop one of them (LoRA already freezes the base model)")
        if self.lora_rank is not None:
            lora_settings(self)  # a bad rank, alpha, dropout or target list fails here too
        elif self.lora_merge:
            raise InputError("--lora-merge needs --lora-rank", fix="add --lora-rank 8, or drop --lora-merge")
        if self.first_score_in_input and self.lora_rank is not None and not self.lora_merge:
            raise InputError("--first-score-in-input is recorded in a full model's manifest, not in a LoRA adapter",
                             fix="add --lora-merge, or drop --first-score-in-input")


def lora_settings(cfg: Any, head: tuple[str, ...] = ()) -> Any:
    """The config's LoRA options as :class:`rankstack.train.lora.LoraSettings` (None without --lora-rank)."""
    if cfg.lora_rank is None:
        return None
    from rankstack.train.lora import LoraSettings

    return LoraSettings(rank=cfg.lora_rank, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                        targets=cfg.lora_targets, modules_to_save=head)


def loss_spec(text: str) -> str | dict[str, Any]:
    """The loss in the one spec syntax (``listnet(temperature=0.5)``) as a registry spec."""
    from rankstack.pipeline.expression import parse_component

    name, args = parse_component(text, what="loss")
    return {"name": name, "args": args} if args else name


@dataclass
class TrainReport:
    """What :func:`run` did."""

    model_dir: str
    train_queries: int
    validation_queries: int
    groups: int
    pairs_per_epoch: int
    steps: int
    seconds: float
    precision: str
    best_validation: float | None
    validation_history: list[float]
    filter_report: dict[str, Any] | None
    stopped_early: bool
    stopped_by_budget: bool = False
    split: str = "train"
    parameters: dict[str, int] | None = None  # {"trainable": n, "total": n}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_text(self) -> str:
        best = "n/a" if self.best_validation is None else f"{self.best_validation:.4f}"
        return (f"wrote {self.model_dir}: {self.groups} groups x {self.steps} steps in {self.seconds / 60:.1f} min "
                f"({self.precision}); validation nDCG@10 {best} on {self.validation_queries} held-out "
                f"{self.split} queries" + (f"; {self.filter_report['flagged']} false negatives flagged"
                                           if self.filter_report else ""))


def _inputs(config: RerankerTrainConfig, collection: Any) -> tuple[Path, ...]:
    from rankstack.data.beir import default_data_root

    root = Path(config.data_root) if config.data_root else default_data_root()
    return (Path(collection.path), root)


def run(config: RerankerTrainConfig, *, progress: bool | None = True, data: Any = None, loss: Any = None,
        after_filter: Any = None, training_info: dict[str, Any] | None = None, collection: Any = None) -> TrainReport:
    """Train a cross-encoder as ``config`` says and save it to ``config.out``.

    ``data`` (a :class:`~rankstack.recipes.reranker_fit.TrainingData`) replaces the groups built from
    the collection's split (the ``adapt`` recipe passes synthetic queries); ``loss`` and
    ``after_filter`` are passed to :func:`~rankstack.recipes.reranker_fit.train`; ``training_info`` is
    stored in the model's manifest with the training record; ``collection`` replaces the one named by
    the config (e.g. a view that also supplies synthetic positives' texts).

    Validation reranks the first stage's top ``validation_depth`` for a held-out slice of the
    training queries and measures nDCG@10 with :func:`rankstack.evaluate.evaluate`; early stopping
    and "restore best" use it. Deterministic for a given ``seed`` (data order, negatives, dropout).
    """
    from rankstack.data.beir import Collection
    from rankstack.hardware import torch_threads
    from rankstack.recipes.reranker_fit import first_score_depth, prepare, train
    from rankstack.rerank.cross_encoder import KIND, save_cross_encoder
    from rankstack.storage import atomic_write_text, check_output_file, check_output_folder
    from rankstack.train.checkpoint import CHECKPOINT_KIND

    t0 = time.perf_counter()
    if collection is None:
        collection = Collection(config.collection, data_root=config.data_root)
    inputs = _inputs(config, collection)
    # fail before minutes of training, not at the save (which checks again under its lock)
    adapter_out = config.lora_rank is not None and not config.lora_merge
    if adapter_out:
        from rankstack.rerank.lora import ADAPTER_KIND as KIND  # noqa: N811 - --out holds an adapter
    check_output_folder(config.out, kind=KIND, overwrite=config.overwrite, inputs=inputs)
    if config.checkpoint_dir is not None:
        check_output_folder(config.checkpoint_dir, kind=CHECKPOINT_KIND, overwrite=True, inputs=inputs)
    if config.report is not None:
        check_output_file(config.report, inputs)
    if data is None:
        data = prepare(config, collection)
    # threads only from here on, as before the recipe existed: the first stage keeps torch's default
    with torch_threads(config.threads):
        fitted = train(config, collection, data, progress=progress, loss=loss, after_filter=after_filter)
    report = TrainReport(model_dir=str(config.out), train_queries=len(data.train_q), validation_queries=len(data.val_q),
                         groups=len(fitted.groups), pairs_per_epoch=fitted.pairs_per_epoch, steps=fitted.fit.steps,
                         seconds=time.perf_counter() - t0, precision=fitted.fit.precision,
                         best_validation=fitted.fit.best_value, validation_history=fitted.validation_history,
                         filter_report=fitted.filter_report, stopped_early=fitted.fit.stopped_early,
                         stopped_by_budget=fitted.fit.stopped_by_budget, split=config.split,
                         parameters=fitted.parameters)
    training = {"config": to_dict(config), "trainer": fitted.trainer_config, "collection": str(collection.path),
                "split": config.split, "report": report.to_dict(), "history": fitted.fit.history,
                **(training_info or {})}
    if adapter_out:
        from rankstack.rerank.cross_encoder import base_model_path
        from rankstack.rerank.lora import save_adapter

        save_adapter(fitted.model, config.out, family="cross-encoder", base_model=config.base_model,
                     base_path=base_model_path(config.base_model), training=training, overwrite=config.overwrite,
                     inputs=inputs, params={"max_length": config.max_length, "lora": fitted.lora,
                                            "parameters": fitted.parameters})
    else:
        model = fitted.model.merge_and_unload() if config.lora_rank is not None else fitted.model
        save_cross_encoder(model, fitted.tokenizer, config.out, max_length=config.max_length,
                           base_model=fitted.base_model, training=training, overwrite=config.overwrite,
                           first_score_in_input=config.first_score_in_input,
                           first_score_depth=first_score_depth(data) if config.first_score_in_input else None)
    if config.report is not None:
        import json

        atomic_write_text(config.report, json.dumps(report.to_dict(), indent=2) + "\n", inputs=inputs,
                          kind="json")
    return report


def export_checkpoint(checkpoint_dir: str | Path, out: str | Path, base_model: str = "minilm",
                      max_length: int = 192, training: dict[str, Any] | None = None, *,
                      overwrite: bool = False, first_score_in_input: bool = False,
                      first_score_depth: int | None = None) -> dict:
    """Turn a Trainer checkpoint of a reranker (e.g. from an interrupted run) into a model folder.

    The checkpoint's weights are verified (manifest checksums), loaded into ``base_model``'s
    architecture and saved like :func:`run` saves, so ``rankstack rerank`` and
    ``sentence_transformers.CrossEncoder`` load it. ``first_score_in_input`` and ``first_score_depth``:
    as the run was trained (see :func:`~rankstack.rerank.cross_encoder.save_cross_encoder`).
    """
    from rankstack.recipes.reranker_data import PairListModel
    from rankstack.rerank.cross_encoder import CrossEncoderReranker, save_cross_encoder
    from rankstack.train.checkpoint import load_checkpoint, read_history

    base = CrossEncoderReranker(base_model, max_length=max_length, precision="fp32")
    manifest = load_checkpoint(PairListModel(base.model), checkpoint_dir)
    info = {"exported_from_checkpoint": str(checkpoint_dir), "trainer": manifest.get("params"),
            "checkpoint": {k: manifest.get(k) for k in ("step", "epoch", "validation")},
            "history": read_history(checkpoint_dir), **(training or {})}
    return save_cross_encoder(base.model, base.tokenizer, out, max_length=max_length,
                              base_model=base.base_model, training=info, overwrite=overwrite,
                              first_score_in_input=first_score_in_input, first_score_depth=first_score_depth)

