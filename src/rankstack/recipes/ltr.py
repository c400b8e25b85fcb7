"""Learning to rank workflows: k-fold cross-validation on LETOR files, and training an ``ltr`` reranker.

Why a recipe: ``rankstack ltr cv``/``ltr train``, a TOML file and the service run the same steps with
the same defaults, declared once in :class:`CVConfig` and :class:`TrainConfig`. Models are named in
the pipeline-expression grammar (``lambdamart(num_leaves=63)``, ``mlp(loss=listnet, epochs=30)``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rankstack.errors import InputError
from rankstack.recipes.config import option

__all__ = ["CVConfig", "CVOutcome", "TrainConfig", "TrainOutcome", "run", "run_train", "model_spec"]

log = logging.getLogger(__name__)


def model_spec(text: str) -> dict[str, Any]:
    """An LTR model spec ``{"name", "args"}`` from its one spelling (``lambdamart(num_leaves=63)``)."""
    from rankstack.pipeline.expression import parse_component

    name, args = parse_component(text, what="model")
    return {"name": name, "args": args}


@dataclass(frozen=True)
class CVConfig:
    """``rankstack ltr cv``: fold k tests on Fk, validates on F(k-1), trains on the rest (DESIGN contract)."""

    folds: list[str] = option(help="the partition files F1..Fn (LETOR S1..S5), or one folder holding S1..S5(.txt)",
                              metavar="F")
    models: list[str] = option(["lambdamart"], flag="--model", metavar="SPEC",
                               help="'lambdamart', 'lambdamart(num_leaves=63)', 'mlp(loss=listnet, epochs=30)' or "
                                    "'attention(...)'; give several (or repeat --model) to compare them over all "
                                    "test queries (the first is the baseline)")
    tune: bool = option(False, help="lambdamart: seeded grid search per fold, scored on that fold's validation set")
    normalisation: Literal["none", "minmax", "zscore"] = option(
        "none", help="per-query feature normalisation applied when reading (LETOR 4.0 QueryLevelNorm files are "
                     "already min-max normalised)")
    n_features: int | None = option(None, help="declare the feature count when a partition file omits trailing "
                                               "zero features (sparse SVMlight); otherwise differing counts are refused")
    seed: int = option(0, help="random seed")
    threads: int = option(1, help="threads per model (0: all cores)")
    save_models: Path | None = option(None, help="keep each fold's model under DIR/<model>/fold<k>", metavar="DIR")
    overwrite: bool = option(False, help="replace fold models already saved under --save-models")
    json: Path | None = option(None, help="write the measures as JSON (one model: {nDCG@1, ..., AP, folds}; several: "
                                          "{label: {...}, ..., comparison})")

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise InputError(f"threads must be 0 (all cores) or more, got {self.threads}")
        if not self.models:
            raise InputError("give at least one model", fix="e.g. --model lambdamart")
        for m in self.models:
            model_spec(m)  # fail before reading any data

    def specs(self) -> list[dict[str, Any]]:
        specs = [model_spec(m) for m in self.models]
        if self.tune:
            for s in specs:
                if s["name"] == "lambdamart":
                    s["args"].setdefault("tune", True)
        return specs


@dataclass
class CVOutcome:
    """Per-model :class:`rankstack.ltr.cv.CVResult`, the paired comparison (several models) and the JSON payload."""

    results: list[Any]
    comparison: Any
    payload: dict[str, Any]

    def to_text(self) -> str:
        parts = [r.to_text() + "\n" for r in self.results]
        if self.comparison is not None:
            parts.append(self.comparison.to_text())
        return "\n".join(parts)


def run(config: CVConfig, *, progress: bool = True) -> CVOutcome:
    """Cross-validate every model of ``config`` on the same folds; compare them when there are several."""
    from rankstack.ltr.cv import compare_models, cross_validate, spec_label
    from rankstack.ltr.data import letor_folds
    from rankstack.storage import atomic_write_text, check_output_file

    inputs = [Path(f) for f in config.folds]
    if config.json is not None:
        check_output_file(config.json, inputs)
    specs = config.specs()
    folds = letor_folds(config.folds, normalisation=config.normalisation, n_features=config.n_features)
    labels = [spec_label(s) for s in specs]
    if len(set(labels)) != len(labels):
        labels = [f"{lab}#{i + 1}" for i, lab in enumerate(labels)]
    results = []
    for spec, label in zip(specs, labels):
        save = config.save_models / label.replace("/", "_") if config.save_models else None
        results.append(cross_validate(folds, spec, seed=config.seed, num_threads=config.threads, save_dir=save,
                                      label=label, overwrite=config.overwrite))
        if progress:
            log.info("%s: nDCG@10 %.4f", label, results[-1].mean.get("nDCG@10", float("nan")))
    comparison = None
    if len(results) == 1:
        payload = results[0].to_dict()
    else:
        comparison = compare_models(results)
        payload = {r.model: r.to_dict() for r in results}
        payload["comparison"] = comparison.to_dict()
    if config.json is not None:
        atomic_write_text(config.json, json.dumps(payload, indent=2) + "\n", inputs=inputs, kind="json")
    return CVOutcome(results, comparison, payload)


@dataclass(frozen=True)
class TrainConfig:
    """``rankstack ltr train``: an ``ltr`` reranker over a text collection's first-stage candidates."""

    collection: str = option(help="a BEIR folder, or a collection name under the data root (e.g. scifact)")
    out: Path = option(help="folder to save the reranker in")
    data_root: str | None = option(None, help="folder holding collections by name ($RANKSTACK_DATA or ../shared/data)")
    split: str = option("train", help="qrels split the labels come from")
    first_stage: str = option("bm25 % 100", help="pipeline producing the candidates")
    model: str = option("lambdamart", metavar="SPEC", help="'lambdamart(...)', 'mlp(...)' or 'attention(...)'")
    valid_fraction: float = option(0.2, help="share of the split's queries held out for early stopping")
    seed: int = option(0, help="random seed")
    threads: int = option(1, help="threads")
    cache_dir: Path | None = option(Path(".cache/rankstack"), help="where indexes and stage outputs are cached "
                                                                   "('none' disables caching)")
    overwrite: bool = option(False, help="replace an ltr reranker already saved at --out")

    def __post_init__(self) -> None:
        model_spec(self.model)


@dataclass
class TrainOutcome:
    out: Path
    reranker: Any = field(repr=False)

    def to_text(self, first_stage: str) -> str:
        model = self.reranker.model
        detail = f"{model.best_iteration} trees" if getattr(model, "best_iteration", None) else \
            f"best epoch {getattr(model, 'best_epoch', '?')}"
        return (f"saved {self.out}: {type(model).__name__} over {len(self.reranker.extractor.feature_names)} "
                f"features ({detail}); use it as \"{first_stage} >> ltr(model='{self.out}')\"")


def run_train(config: TrainConfig, *, progress: bool = True) -> TrainOutcome:
    """Features of the first stage's candidates, labels from qrels, a seeded validation split; save."""
    from rankstack.data.beir import Collection
    from rankstack.ltr.features import train_ltr_reranker
    from rankstack.pipeline.expression import parse_pipeline
    from rankstack.registry import Context

    collection = Collection(config.collection, data_root=config.data_root)
    first = parse_pipeline(config.first_stage, Context(collection=collection, cache_dir=config.cache_dir))
    reranker = train_ltr_reranker(collection, first, split=config.split, model=model_spec(config.model),
                                  valid_fraction=config.valid_fraction, seed=config.seed,
                                  num_threads=config.threads)
    reranker.save(config.out, overwrite=config.overwrite)
    return TrainOutcome(config.out, reranker)
