"""Label-free domain adaptation of a cross-encoder (``rankstack adapt --collection DIR --out MODEL_DIR``).

Why one recipe: most people with a corpus have no relevance labels. The recipe makes them and trains
on them, end to end, on a CPU: select documents (uniform, or DUQGen's cluster-diverse sampling,
Chandradevan et al., WSDM 2024), generate a query for each (InPars, Bonifacio et al. 2022), filter the
pairs (InPars' top fraction by log-probability; round-trip consistency, Alberti et al. 2019), mine
BM25 + dense hard negatives with the false-negative filter, optionally attach a teacher
cross-encoder's scores for Margin-MSE ("GPL", Wang et al., NAACL 2022), mix in real judgements when
the collection has some, and train with the reranker recipe's Trainer under a time budget
(:func:`rankstack.recipes.reranker.run`, so the result is the same cross-encoder artefact that
``rankstack rerank`` and experiment files load). A slice of the synthetic queries is held back: the
model is validated on it during training (early stopping) and the report compares it with BM25 there.
With real judgements, ``--real-heldout N`` validates on N held-back judged queries instead: the
synthetic ones (a sentence of the document, or an LLM paraphrase of it) are ones BM25 ranks at
RR@10 0.97-1.00, so they saturate and cannot choose a checkpoint.

Generation and filtering are part 1's (:mod:`rankstack.recipes.adapt_generate` calls them); the
generated queries live in a work folder keyed by the generation settings, so a re-run resumes them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rankstack.errors import InputError
from rankstack.recipes.config import option, to_dict

__all__ = ["AdaptConfig", "AdaptReport", "run", "report_path"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdaptConfig:
    """Everything that defines an adaptation run; every option but --collection and --out has a default."""

    collection: str = option(help="a BEIR folder, or a collection name under the data root (e.g. cranfield); "
                                  "only its corpus is read (labels are not used unless --real-split)")
    out: Path = option(help="cross-encoder folder to write (atomically); an existing one needs --overwrite, "
                            "anything else there is refused")
    data_root: str | None = option(None, help="folder holding collections by name ($RANKSTACK_DATA or ../shared/data)")
    overwrite: bool = option(False, help="replace a cross-encoder already saved at --out")
    queries: Path | None = option(None, help="train on this synthetic-queries JSONL (from 'rankstack "
                                             "generate-queries') instead of generating")
    generator: str = option("ict", help="query generator (see 'rankstack generate-queries --help')")
    selection: Literal["uniform", "duqgen"] = option("uniform", help="which documents get queries")
    max_docs: int = option(600, help="documents to generate queries for")
    filters: str = option("roundtrip", help="comma-separated pair filters applied in order: 'inpars', "
                                            "'roundtrip', or 'none'")
    keep_fraction: float = option(0.5, help="inpars filter: keep this top fraction by log-probability")
    roundtrip_k: int = option(20, help="roundtrip filter: keep a pair when its source is in BM25's top k")
    generation_budget_minutes: float | None = option(20.0, flag="--generation-budget", metavar="MINUTES",
                                                     help="stop generating after this many minutes (resumable)")
    heldout: int = option(50, help="synthetic queries held back for validation")
    negatives: str = option("bm25,dense", help="comma-separated hard-negative sources: bm25, dense")
    n_negatives: int = option(7, help="hard negatives per synthetic query")
    negative_depth: int = option(30, help="mine negatives from this top k")
    fn_filter: str | None = option("dense", metavar="TEACHER", help="false-negative filter teacher: 'dense', a "
                                                                    "cross-encoder folder, or none")
    teacher: str | None = option(None, metavar="MODEL_DIR", help="GPL: a teacher cross-encoder whose score margins "
                                                                 "the model learns (Margin-MSE)")
    gpl_weight: float = option(1.0, help="GPL: weight of Margin-MSE against the hard-label loss (1 = pure GPL)")
    real_split: str | None = option(None, help="also train on this split's real judgements (e.g. train)")
    real_heldout: int = option(0, help="with --real-split: hold back this many of its judged queries and validate "
                                       "on them (checkpoint choice, early stopping) instead of on the held-back "
                                       "synthetic queries, which BM25 ranks near-perfectly (0 = synthetic)")
    loss: str = option("listnet", metavar="SPEC", help="hard-label loss (see 'rankstack train reranker')")
    base_model: str = option("minilm", help="'minilm' (all-MiniLM-L6-v2 + new head) or a local transformers folder")
    epochs: int = option(4, help="passes over the training groups (the time budget usually stops first)")
    max_steps: int | None = option(None, help="stop after this many optimiser steps")
    batch_size: int = option(2, help="query groups per batch")
    grad_accum: int = option(4, help="optimiser step every N batches")
    lr: float = option(5e-5, help="base learning rate (AdamW)")
    max_length: int = option(192, help="tokens per (query, document) pair")
    validate_every: int | None = option(60, help="optimiser steps between validations on the held-back queries")
    patience: int | None = option(4, help="stop after this many validations without improvement")
    time_budget_minutes: float | None = option(20.0, flag="--time-budget", metavar="MINUTES",
                                               help="stop training after this many minutes (keeps the best "
                                                    "validated state)")
    precision: Literal["auto", "bf16", "fp32"] = option("auto", help="auto = bf16 autocast where the CPU has it")
    threads: int | None = option(None, help="torch threads while training (none: torch's choice)")
    fused_optimizer: bool = option(True, help="torch's fused AdamW step where this torch has one (same update, "
                                              "fewer passes; benchmarks/training.md)")
    attention_dropout: float | None = option(None, help="attention-probability dropout while training (none: the "
                                                        "model's; 0 lets torch run fused attention, ~1.4x with "
                                                        "--fused-optimizer, benchmarks/training.md)")
    first_score_in_input: bool = option(False, help="BM25's score in the model input (Askari et al., ECIR 2023; see "
                                                    "'rankstack train reranker --help'); helps with --real-split, "
                                                    "not on synthetic queries alone (benchmarks/adapt.md)")
    seed: int = option(0, help="seeds selection, generation, the held-back split, negatives and training")
    work_dir: Path | None = option(None, help="where generated queries are kept (none: under --cache-dir, keyed "
                                              "by the generation settings, so a re-run resumes)")
    report: Path | None = option(None, help="report JSON (none: MODEL_DIR.adapt.json next to the model)")
    cache_dir: Path | None = option(Path(".cache/rankstack"), help="indexes, embeddings and generated queries "
                                                                   "('none' disables caching)")

    def __post_init__(self) -> None:
        for name in ("max_docs", "roundtrip_k", "n_negatives", "negative_depth", "epochs", "batch_size",
                     "grad_accum", "max_length"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        if self.heldout < 1:
            raise InputError(f"--heldout must be 1 or more (the model is validated on them), got {self.heldout}")
        if self.real_heldout < 0:
            raise InputError(f"--real-heldout must be 0 or more, got {self.real_heldout}")
        if self.real_heldout and not self.real_split:
            raise InputError("--real-heldout needs --real-split: it holds back judged queries of that split",
                             fix="add --real-split train, or drop --real-heldout")
        if not 0.0 < self.keep_fraction <= 1.0:
            raise InputError(f"--keep-fraction must be in (0, 1], got {self.keep_fraction}")
        if not 0.0 <= self.gpl_weight <= 1.0:
            raise InputError(f"--gpl-weight must be in [0, 1], got {self.gpl_weight}")
        if self.attention_dropout is not None and not 0.0 <= self.attention_dropout < 1.0:
            raise InputError(f"--attention-dropout must be in [0, 1), got {self.attention_dropout}")
        from rankstack.synth.generators import GENERATORS

        if self.generator not in GENERATORS:
            from rankstack.errors import did_you_mean

            raise InputError(f"unknown query generator {self.generator!r}{did_you_mean(self.generator, GENERATORS)}",
                             fix=f"use one of {', '.join(GENERATORS)}")
        filter_names(self.filters)
        negative_sources(self.negatives)
        from rankstack.losses import get_loss
        from rankstack.recipes.reranker import loss_spec

        get_loss(loss_spec(self.loss))


def filter_names(text: str) -> list[str]:
    """``"inpars,roundtrip"`` -> ["inpars", "roundtrip"]; 'none' -> []."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if names == ["none"]:
        return []
    bad = [n for n in names if n not in ("inpars", "roundtrip")]
    if bad or not names:
        raise InputError(f"--filters {text!r}: unknown filter {bad[0] if bad else '(empty)'!r}",
                         fix="write --filters inpars, roundtrip, inpars,roundtrip or none")
    return names


def negative_sources(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in ("bm25", "dense")]
    if bad or not names:
        raise InputError(f"--negatives {text!r}: unknown source {bad[0] if bad else '(empty)'!r}",
                         fix="write --negatives bm25, dense or bm25,dense")
    return list(dict.fromkeys(names))


def report_path(config: AdaptConfig) -> Path:
    """Where the report JSON goes: ``--report``, else ``MODEL_DIR.adapt.json`` beside the model folder."""
    if config.report is not None:
        return config.report
    out = Path(config.out)
    return out.with_name(out.name + ".adapt.json")


@dataclass
class AdaptReport:
    """What :func:`run` did: counts per step, times, and validation on the held-back synthetic queries."""

    model_dir: str
    collection: str
    generator: str
    selection: str
    documents: int
    empty_documents: int
    generated: int
    kept_by_filter: dict[str, int]
    dropped: dict[str, int]
    train_queries: int
    real_queries: int
    heldout_queries: int
    groups: int
    steps: int
    fn_filter: dict[str, Any] | None
    gpl: bool
    generation_seconds: float
    mining_seconds: float
    training_seconds: float
    total_seconds: float
    heldout: dict[str, dict[str, float]]  # {"bm25": {"RR@10": ..}, "adapted": {...}}
    stopped_by_budget: bool
    queries_file: str
    generation: dict[str, Any] = dataclasses.field(default_factory=dict)
    base_model: str = "minilm"
    real_heldout_queries: int = 0  # --real-heldout: judged queries the model was validated on
    heldout_real: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)  # same keys as heldout

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "warning": self.warning}

    def to_text(self) -> str:
        kept = ", ".join(f"{k} {v}" for k, v in self.kept_by_filter.items()) or "no filter"
        held = self.heldout.get("adapted", {}).get("RR@10")
        base = self.heldout.get("bm25", {}).get("RR@10")
        held_text = ("" if held is None else f"; held-back synthetic RR@10 {held:.4f} (BM25 top-30 "
                     f"{base:.4f}) on {self.heldout_queries} queries")
        real = self.heldout_real.get("adapted", {}).get("nDCG@10")
        if real is not None:
            held_text += (f"; held-back judged nDCG@10 {real:.4f} (BM25 top-30 "
                          f"{self.heldout_real['bm25']['nDCG@10']:.4f}) on {self.real_heldout_queries} queries")
        text = (f"wrote {self.model_dir}: {self.generated} {self.generator} queries generated in "
                f"{self.generation_seconds / 60:.1f} min, kept: {kept}; trained on {self.train_queries} synthetic"
                + (f" + {self.real_queries} real" if self.real_queries else "")
                + f" queries ({self.groups} groups, {self.steps} steps) in {self.training_seconds / 60:.1f} min"
                + held_text)
        return text if self.warning is None else f"{text}\nwarning: {self.warning}"

    @property
    def warning(self) -> str | None:
        """A line for the user when the model has plainly not learned the task: it ranks the held-back
        queries' source documents at less than half BM25's RR@10. ICT and LLM queries share words with
        their source, so BM25 is strong there and a useful reranker still trails it a little (0.74-0.84
        vs 0.97-1.00 in benchmarks/adapt.md); a fresh ranking head after ~180 steps fell to 0.23 vs 1.00
        and ranked scifact's test queries at 0.26 nDCG@10 against BM25's 0.68."""
        held = self.heldout.get("adapted", {}).get("RR@10")
        base = self.heldout.get("bm25", {}).get("RR@10")
        if held is None or base is None or held >= 0.5 * base:
            return None
        return (f"the adapted reranker ranks the held-back synthetic queries' sources far below BM25 (RR@10 "
                f"{held:.4f} vs {base:.4f}): it has not learned to rank; do not use it alone. "
                + ("Start from a trained cross-encoder (--base-model DIR), t" if self.base_model == "minilm" else "T")
                + "rain on LLM queries (--generator llm-instruct: 0.61 vs 0.26 nDCG@10 on scifact from the fresh "
                "head, benchmarks/adapt.md) or give training more time (--time-budget)")


# Measured (benchmarks/adapt.md, eleventh session): a synthetic query's source is BM25's first document for
# ~87% of the queries the round-trip filter keeps, so with no real judgements the score in the input predicts the
# label and the model learns "BM25's first is relevant" (cranfield: BM25's first kept first on 224 of 225 test
# queries, 0.3476 vs the plain CE's 0.3639); with scifact's judgements the same option gained +0.025.
SYNTHETIC_SCORE_WARNING = ("--first-score-in-input without --real-split: on synthetic queries alone the model "
                           "tends to learn that BM25's first document is the relevant one (their source is BM25's "
                           "first for most of them) and keeps BM25's order at the top; it helped with real "
                           "judgements (benchmarks/adapt.md)")


def _reranker_config(cfg: AdaptConfig) -> Any:
    from rankstack.recipes.reranker import RerankerTrainConfig

    return RerankerTrainConfig(
        collection=cfg.collection, out=cfg.out, data_root=cfg.data_root, split="synthetic", overwrite=cfg.overwrite,
        base_model=cfg.base_model, loss=cfg.loss, first_stage="bm25", negatives="bm25",
        n_negatives=cfg.n_negatives, negative_depth=cfg.negative_depth, validation=cfg.heldout,
        validation_depth=30, validate_every=cfg.validate_every, patience=cfg.patience, epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        batch_size=cfg.batch_size, grad_accum=cfg.grad_accum, lr=cfg.lr, max_length=cfg.max_length,
        precision=cfg.precision, threads=cfg.threads, seed=cfg.seed, fn_filter=cfg.fn_filter,
        fused_optimizer=cfg.fused_optimizer, attention_dropout=cfg.attention_dropout,
        time_budget_minutes=cfg.time_budget_minutes, cache_dir=cfg.cache_dir,
        first_score_in_input=cfg.first_score_in_input)


def _check_corpus(collection: Any) -> tuple[int, int]:
    """(documents, documents with empty text); an empty corpus, or one with no text at all, is an error."""
    docs = collection.documents()
    if not docs:
        raise InputError("the corpus has no document: there is nothing to generate queries from",
                         path=collection.corpus_path, fix="give a collection whose corpus.jsonl has documents")
    empty = sum(1 for d in docs.values() if not d.contents.strip())
    if empty == len(docs):
        raise InputError(f"all {len(docs)} documents have empty title and text", path=collection.corpus_path,
                         fix="fill the 'text' (or 'title') field of the corpus documents")
    if empty:
        log.warning("%d of %d documents have empty text: no query is generated for them", empty, len(docs))
    return len(docs), empty


def run(config: AdaptConfig, *, progress: bool | None = True, backend: Any = None) -> AdaptReport:
    """Generate, filter, mine, train and validate; save the cross-encoder and the report.

    ``backend`` replaces the LLM of an LLM generator (tests pass the scripted fake).
    """
    from rankstack.data.beir import Collection
    from rankstack.recipes import reranker
    from rankstack.recipes.adapt_data import build_training_data, heldout_scores
    from rankstack.recipes.adapt_generate import synthetic_queries
    from rankstack.rerank.cross_encoder import KIND
    from rankstack.storage import atomic_write_text, check_output_file, check_output_folder

    t0 = time.perf_counter()
    collection = Collection(config.collection, data_root=config.data_root)
    reranker_cfg = _reranker_config(config)
    inputs = reranker._inputs(reranker_cfg, collection)
    # refuse a bad --out / --report before minutes of work (the save checks again under its lock)
    check_output_folder(config.out, kind=KIND, overwrite=config.overwrite, inputs=inputs)
    report_file = report_path(config)
    check_output_file(report_file, inputs)
    n_docs, n_empty = _check_corpus(collection)
    if config.first_score_in_input and not config.real_split:
        log.warning(SYNTHETIC_SCORE_WARNING)

    gen = synthetic_queries(config, collection, progress=progress, backend=backend)
    t_gen = time.perf_counter()
    prepared = build_training_data(config, collection, gen.records, source=gen.path, progress=progress)
    t_mine = time.perf_counter()
    info = {"adapt": {"config": to_dict(config), "generation": gen.summary(), "labels": prepared.summary()}}
    train_report = reranker.run(reranker_cfg, progress=progress, data=prepared.data, loss=prepared.loss,
                                after_filter=prepared.after_filter, training_info=info,
                                collection=prepared.collection)
    t_train = time.perf_counter()
    held = heldout_scores(config, collection, prepared)
    held_real = heldout_scores(config, collection, prepared, real=True) if prepared.real_val else {}
    report = AdaptReport(
        model_dir=str(config.out), collection=str(collection.path), generator=gen.generator,
        selection=config.selection, documents=n_docs, empty_documents=n_empty, generated=gen.generated,
        kept_by_filter=gen.kept, dropped=prepared.labels.dropped, train_queries=prepared.synthetic_train,
        real_queries=prepared.real_queries, heldout_queries=len(prepared.synthetic_val), groups=train_report.groups,
        steps=train_report.steps, fn_filter=train_report.filter_report, gpl=config.teacher is not None,
        generation_seconds=gen.seconds, mining_seconds=t_mine - t_gen, training_seconds=t_train - t_mine,
        total_seconds=time.perf_counter() - t0, heldout=held, stopped_by_budget=train_report.stopped_by_budget,
        queries_file=str(gen.path), generation=gen.summary(), base_model=config.base_model,
        real_heldout_queries=len(prepared.real_val), heldout_real=held_real)
    if report.warning is not None:
        log.warning("%s", report.warning)
    atomic_write_text(report_file, json.dumps(report.to_dict(), indent=2) + "\n", inputs=inputs, kind="json")
    return report
