"""Train a dense bi-encoder retriever (``rankstack train biencoder``) with the shared Trainer and losses.

Methods (``--method``), all on a collection's judged training queries, starting from all-MiniLM-L6-v2:

* ``infonce``: contrastive fine-tuning -- each query against its positive, ``n_negatives`` hard
  negatives and, with ``in_batch``, every other document of the batch (Karpukhin et al., "Dense Passage
  Retrieval for Open-Domain Question Answering", 2020). Hard negatives are *static* (mined once from
  BM25 or the untrained dense model, STAR's set-up) and, with ``dynamic_rounds``, re-mined after each
  round from the current model's own index of the corpus (the dynamic negatives of Zhan et al.,
  "Optimizing Dense Retrieval Model Training with Hard Negatives", SIGIR 2021).
* ``margin-mse`` / ``listwise-kl``: cross-architecture distillation from a trained cross-encoder's
  scores (Hofstätter et al., "Improving Efficient Neural Ranking Models with Cross-Architecture
  Knowledge Distillation", 2020); teacher scores are computed once and cached as an artefact.
* ``adore``: only the query encoder trains, against a fixed document index (ADORE, same SIGIR 2021
  paper): :mod:`rankstack.recipes.adore`.
* ``ar2``: retriever and cross-encoder ranker trained in alternation (Zhang et al., "Adversarial
  Retriever-Ranker for Dense Text Retrieval", ICLR 2022): :mod:`rankstack.recipes.ar2`.

``--loss`` takes any registered loss by name (``rankstack.losses``), so e.g. a policy-gradient loss
can replace the method's default. The false-negative filter (Xu et al., CIKM 2022) drops mined
negatives a dense MiniLM teacher scores above the positive. bf16 autocast runs where the CPU has it
(:func:`rankstack.hardware.resolve_precision`), fp32 elsewhere. Validation: nDCG@10 of the current
model reranking the BM25 top ``val_depth`` of held-out *training* queries; the best state is kept.
The model is saved as a sentence-transformers folder + manifest (safetensors, atomic).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rankstack.errors import InputError
from rankstack.recipes.config import option

__all__ = ["BiEncoderTrainConfig", "BiEncoderOutcome", "METHODS", "DEFAULT_LOSS", "run", "prepare", "Prepared"]

log = logging.getLogger(__name__)

METHODS = ("infonce", "margin-mse", "listwise-kl", "adore", "ar2")
DEFAULT_LOSS = {"infonce": "infonce", "margin-mse": "margin_mse", "listwise-kl": "listwise_kl",
                "adore": "infonce", "ar2": "infonce(temperature=1.0)"}
_POSITIVE = ("n_negatives", "depth", "epochs", "batch_size", "val_depth", "query_max_length", "doc_max_length",
             "adore_depth", "ar2_rounds", "ar2_ranker_steps")


@dataclass(frozen=True)
class BiEncoderTrainConfig:
    """Train a bi-encoder on a collection's judged training queries (defaults: the scifact study)."""

    collection: str = option("scifact", help="a BEIR folder or a name under the data root")
    data_root: str | None = option(None, help="folder holding collections by name")
    split: str = option("train", help="qrels split to train on (validation queries are held out of it)")
    synthetic_queries: Path | None = option(None, metavar="JSONL", help="train on these generated queries "
                                            "('rankstack generate-queries'; source document = positive) instead "
                                            "of --split's judgements: label-free adaptation, GPL with --method "
                                            "margin-mse --teacher")
    out: Path | None = option(None, help="model folder to write (none: do not save)")
    overwrite: bool = option(False, help="replace a bi-encoder already saved at --out")
    cache_dir: Path | None = option(Path(".cache/rankstack"), help="cache folder (BM25, vectors, teacher scores)")
    base: str = option("minilm", help="start from 'minilm', a saved bi-encoder or a transformers folder")
    method: Literal["infonce", "margin-mse", "listwise-kl", "adore", "ar2"] = option(
        "infonce", help="training method (see the module docs)")
    loss: str | None = option(None, metavar="SPEC", help="any registered loss (default: the method's own)")
    negatives: Literal["bm25", "dense"] = option("bm25", help="static hard negatives: BM25 or untrained MiniLM")
    n_negatives: int = option(1, help="hard negatives per positive")
    depth: int = option(30, help="hard negatives are drawn from this top k")
    skip: int = option(0, help="skip this many top-ranked candidates when mining (likely false negatives)")
    in_batch: bool = option(True, help="other examples' documents are negatives too (infonce)")
    fn_filter: bool = option(False, help="drop negatives an untrained MiniLM scores above the positive")
    dynamic_rounds: int = option(0, help="re-mine negatives from the current model's index this many times")
    freeze_documents: bool = option(False, help="train only the query encoder; documents keep the base encoder's "
                                                "cached vectors (saved with an index, as ADORE)")
    teacher: str | None = option(None, metavar="DIR", help="cross-encoder folder: distillation teacher / AR2 ranker")
    scale: float = option(20.0, help="student scores are cosine x scale for distillation losses")
    query_max_length: int = option(64, help="query tokens while training")
    doc_max_length: int = option(192, help="document tokens while training (the saved model keeps its own)")
    epochs: int = option(1, help="passes over the training examples (per round)")
    max_steps: int | None = option(None, help="stop after this many optimiser steps (per round)")
    time_budget_minutes: float | None = option(None, flag="--time-budget", metavar="MINUTES",
                                               help="minutes of training in all, then stop (best state kept)")
    batch_size: int = option(16, help="examples (queries) per step")
    lr: float = option(2e-5, help="AdamW learning rate")
    warmup_ratio: float = option(0.1, help="linear warm-up fraction")
    validation: int = option(50, help="held-out training queries for validation (0: none)")
    val_depth: int = option(20, help="BM25 depth reranked for validation")
    validate_every: int | None = option(None, help="validate every N steps (none: each epoch)")
    patience: int | None = option(None, help="stop after N validations without improvement")
    adore_depth: int = option(100, help="ADORE: documents retrieved per query at each step")
    ar2_rounds: int = option(2, help="AR2: ranker/retriever alternations")
    ar2_ranker_steps: int = option(30, help="AR2: ranker optimiser steps per round")
    ar2_weight: float = option(0.5, help="AR2: weight of the ranker's KL term (the rest is InfoNCE)")
    precision: Literal["auto", "fp32", "bf16"] = option("auto", help="autocast precision (auto: bf16 if native)")
    threads: int | None = option(None, help="torch threads")
    seed: int = option(0, help="seed of the validation split, negatives and batch order")

    def __post_init__(self) -> None:
        for name in _POSITIVE:
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)!r}")
        for name in ("validation", "skip", "dynamic_rounds"):
            if getattr(self, name) < 0:
                raise InputError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)!r}")
        if self.skip >= self.depth:
            raise InputError(f"--skip ({self.skip}) must be below --depth ({self.depth})")
        if self.method not in METHODS:
            raise InputError(f"unknown method {self.method!r}", fix=f"choose one of {', '.join(METHODS)}")
        if self.lr <= 0 or self.scale <= 0:
            raise InputError("--lr and --scale must be positive")
        if not 0.0 <= self.ar2_weight <= 1.0:
            raise InputError(f"--ar2-weight must be in [0, 1], got {self.ar2_weight!r}")
        if self.time_budget_minutes is not None and self.time_budget_minutes <= 0:
            raise InputError(f"--time-budget must be positive minutes, got {self.time_budget_minutes!r}")
        if self.freeze_documents and (self.dynamic_rounds or self.method in ("adore", "ar2")):
            raise InputError("--freeze-documents trains the query encoder on static negatives: it does not combine "
                             "with --dynamic-rounds, adore (always frozen) or ar2",
                             fix="use --method adore for negatives retrieved by the current query encoder")
        if self.method in ("margin-mse", "listwise-kl") and self.teacher is None:
            raise InputError(f"--method {self.method} distils a cross-encoder's scores: it needs --teacher",
                             fix="pass --teacher DIR (a folder from 'rankstack train reranker')")
        if self.teacher is not None and not (Path(self.teacher) / "config.json").is_file():
            raise InputError("--teacher is not a cross-encoder folder (no config.json)", path=self.teacher,
                             fix="pass a folder from 'rankstack train reranker'")
        from rankstack.losses import get_loss
        from rankstack.recipes.reranker import loss_spec

        get_loss(loss_spec(self.loss_name))  # an unknown loss fails before any work

    @property
    def loss_name(self) -> str:
        return self.loss or DEFAULT_LOSS[self.method]

    @property
    def budget_seconds(self) -> float | None:
        return None if self.time_budget_minutes is None else self.time_budget_minutes * 60.0


@dataclass
class BiEncoderOutcome:
    """What a training run did; ``model`` is the trained SentenceTransformer (query encoder for ADORE)."""

    method: str
    model: Any
    seconds: float
    steps: int
    best_validation: float | None
    stopped_by_budget: bool = False
    out: Path | None = None
    details: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def losses(self) -> list[float]:
        return [h["loss"] for h in self.history if h.get("event") == "train"]

    def to_text(self) -> str:
        val = "-" if self.best_validation is None else f"{self.best_validation:.4f}"
        return (f"trained bi-encoder ({self.method}): {self.steps} steps in {self.seconds / 60:.1f} min"
                f"{' (time budget reached)' if self.stopped_by_budget else ''}; best validation nDCG@10 {val}"
                + (f"; saved to {self.out}" if self.out else ""))


@dataclass
class Prepared:
    """Everything every method shares: collection, queries, validation split, BM25 run and groups."""

    collection: Any
    queries: Any
    qrels: Any
    train_q: list[str]
    val_q: list[str]
    bm25: Any
    groups: list[Any]
    inputs: tuple
    filter_report: dict[str, Any] | None = None


def prepare(config: BiEncoderTrainConfig) -> Prepared:
    """Collection, a seeded validation slice of the training queries, static hard negatives, groups."""
    from rankstack.data.beir import Collection, default_data_root
    from rankstack.recipes.reranker_data import build_groups, split_queries
    from rankstack.storage import check_output_folder
    from rankstack.train.negatives import first_stage_run, sample_negatives

    coll = Collection(config.collection, data_root=config.data_root)
    inputs = (coll.path, Path(config.data_root) if config.data_root else default_data_root()) + (
        (Path(config.synthetic_queries),) if config.synthetic_queries is not None else ())
    if config.out is not None:  # refuse a bad --out before minutes of work
        check_output_folder(config.out, overwrite=config.overwrite, inputs=inputs)
    queries, qrels = _training_labels(config, coll)
    judged = set(qrels.to_dict())
    judged_qids = [q for q in queries.qids if q in judged]
    if not judged_qids:
        raise InputError(f"no {config.split} query of {config.collection} has a judgement",
                         fix="check the split's qrels (qrels/<split>.tsv)")
    train_q, val_q = split_queries(judged_qids, config.validation, seed=config.seed) if config.validation \
        else (judged_qids, [])
    bm25 = first_stage_run(coll, queries, "bm25", k=max(config.depth, config.val_depth), cache_dir=config.cache_dir)
    neg_run = bm25 if config.negatives == "bm25" else first_stage_run(coll, queries, "dense", k=config.depth,
                                                                      cache_dir=config.cache_dir)
    train_queries = queries.subset(train_q)
    negs = sample_negatives(train_queries, qrels, config.n_negatives, config.negatives, run=neg_run,
                            all_docids=list(coll.documents()), depth=config.depth, skip=config.skip,
                            seed=config.seed)
    groups = build_groups(train_queries, qrels, negs, first_stage=bm25)
    if not groups:
        raise InputError(f"no {config.split} query of {config.collection} has a judged positive")
    prepared = Prepared(coll, queries, qrels, train_q, val_q, bm25, groups, inputs)
    if config.fn_filter:
        groups, prepared.filter_report = filter_groups(config, coll, groups)
        prepared.groups = groups
    return prepared


def _training_labels(config: BiEncoderTrainConfig, coll: Any) -> tuple[Any, Any]:
    """The split's queries and judgements, or those of ``--synthetic-queries`` (source document = positive).

    Synthetic queries are how GPL (Wang et al., NAACL 2022) and InPars train retrievers without labels;
    the same reader and checks as ``rankstack adapt`` (a corrupt file or one made from another corpus
    is one clear error).
    """
    if config.synthetic_queries is None:
        return coll.queries(config.split), coll.qrels(config.split)
    from rankstack.synth.records import read_synthetic_queries
    from rankstack.synth.training import labels_from_synthetic

    path = Path(config.synthetic_queries)
    if not path.is_file():
        raise InputError("no such synthetic-queries file", path=path,
                         fix="write one with 'rankstack generate-queries --collection ... --out FILE'")
    records = read_synthetic_queries(path)
    labels = labels_from_synthetic(records, coll.documents(), source=path)
    if "ict" in labels.generators:
        log.warning("%s: %d ICT queries are sentences of their positive document, which the bi-encoder sees "
                    "whole: it can learn to spot the copied sentence; LLM queries (--generator llm-instruct) "
                    "do not have this problem", path, labels.generators["ict"])
    if labels.dropped:
        log.info("synthetic queries dropped: %s", labels.dropped)
    return labels.queries, labels.qrels


def filter_groups(config: BiEncoderTrainConfig, coll: Any, groups: list[Any]) -> tuple[list[Any], dict[str, Any]]:
    """The shared false-negative filter with an untrained MiniLM teacher (corpus vectors from the cache)."""
    from rankstack.train.negatives import DenseTeacher, FalseNegativeFilter

    teacher = DenseTeacher("minilm", collection=coll, cache_dir=config.cache_dir)
    kept, report = FalseNegativeFilter(teacher).apply(groups, coll.doc_texts)
    return kept, report.to_dict()


def run(config: BiEncoderTrainConfig, *, progress: bool | None = None) -> BiEncoderOutcome:
    """Train with ``config.method`` and save to ``config.out`` if given."""
    prepared = prepare(config)
    if config.method == "adore":
        from rankstack.recipes.adore import train_adore

        return train_adore(config, prepared, progress=progress)
    if config.method == "ar2":
        from rankstack.recipes.ar2 import train_ar2

        return train_ar2(config, prepared, progress=progress)
    from rankstack.recipes.biencoder_fit import train_biencoder

    return train_biencoder(config, prepared, progress=progress)
