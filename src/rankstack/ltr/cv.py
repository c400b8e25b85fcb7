"""k-fold cross-validation of LTR models on LETOR partitions, measured by ``rankstack.evaluate``.

Protocol (DESIGN.md CLI contract; the LETOR 4.0 folds): fold k trains on the other partitions,
early-stops and tunes on F(k-1), and is scored once on Fk. Every measure follows trec_eval: a test
query without any relevant document scores 0 on nDCG and AP and counts in the mean (LightGBM's own
NDCG would score it 1; many papers drop it). The headline mean is over all test queries of all
folds (each query once), which is also what :func:`compare_models` tests; per-fold means are
reported beside it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rankstack.errors import InputError
from rankstack.ltr.data import Fold, no_relevant_queries
from rankstack.registry import build, parse_spec
from rankstack.types import Qrels, Run

__all__ = ["CV_MEASURES", "CONVENTION", "FoldResult", "CVResult", "cross_validate", "compare_models",
           "build_model", "spec_label"]

log = logging.getLogger(__name__)

CV_MEASURES = ("nDCG@1", "nDCG@3", "nDCG@5", "nDCG@10", "AP")
CONVENTION = ("trec_eval: a query with no relevant document scores 0 on nDCG and AP and counts in "
              "the mean")


def spec_label(spec: str | Mapping[str, Any]) -> str:
    """A short, stable label for a model spec, e.g. ``mlp(loss=listnet)``."""
    name, args = parse_spec(spec)
    keep = {k: v for k, v in args.items() if k in ("loss", "tune")}
    return name + (f"({', '.join(f'{k}={v}' for k, v in keep.items())})" if keep else "")


def build_model(spec: str | Mapping[str, Any], seed: int = 0, num_threads: int | None = None):
    """Build an LTR model (kind ``ltr_model``) from its spec, forcing ``seed``/``num_threads``."""
    name, args = parse_spec(spec)
    args.setdefault("seed", seed)
    if num_threads is not None:
        args.setdefault("num_threads", num_threads)
    return build({"name": name, "args": args}, kind="ltr_model")


@dataclass
class FoldResult:
    fold: Fold
    measures: dict[str, float]
    run: Run
    n_queries: int
    n_no_relevant: int
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.fold.describe(), **{m: v for m, v in self.measures.items()},
                "queries": self.n_queries, "no_relevant_queries": self.n_no_relevant,
                "seconds": round(self.seconds, 2), **self.info}


@dataclass
class CVResult:
    """Cross-validation of one model: the mean over all test queries, per-fold results, the test run."""

    model: str
    measures: list[str]
    mean: dict[str, float]
    folds: list[FoldResult]
    run: Run
    qrels: Qrels
    n_no_relevant: int

    @property
    def n_queries(self) -> int:
        return sum(f.n_queries for f in self.folds)

    def fold_mean(self) -> dict[str, float]:
        """Mean of the per-fold means (the other common way to summarise k-fold results)."""
        return {m: sum(f.measures[m] for f in self.folds) / len(self.folds) for m in self.measures}

    def to_dict(self) -> dict[str, Any]:
        """The ``rankstack ltr cv --json`` payload (DESIGN contract keys first)."""
        return {**{m: self.mean[m] for m in self.measures}, "folds": [f.to_dict() for f in self.folds],
                "model": self.model, "queries": self.n_queries, "no_relevant_queries": self.n_no_relevant,
                "convention": CONVENTION, "fold_mean": self.fold_mean()}

    def to_text(self) -> str:
        cols = self.measures
        head = f"{'fold':<8}{'test':<6}{'queries':>8}{'no-rel':>7}" + "".join(f"{m:>9}" for m in cols)
        lines = [f"model: {self.model}", head]
        for f in self.folds:
            lines.append(f"{f.fold.name:<8}{f.fold.test_part:<6}{f.n_queries:>8}{f.n_no_relevant:>7}"
                         + "".join(f"{f.measures[m]:>9.4f}" for m in cols))
        lines.append(f"{'all':<14}{self.n_queries:>8}{self.n_no_relevant:>7}"
                     + "".join(f"{self.mean[m]:>9.4f}" for m in cols))
        lines.append(f"convention: {CONVENTION} ({self.n_no_relevant} of {self.n_queries} test queries "
                     "have no relevant document)")
        return "\n".join(lines)


def cross_validate(folds: Sequence[Fold], spec: str | Mapping[str, Any] | Callable[[], Any] = "lambdamart",
                   measures: Sequence[str] = CV_MEASURES, seed: int = 0, num_threads: int | None = 1,
                   save_dir: str | Path | None = None, label: str | None = None,
                   overwrite: bool = False) -> CVResult:
    """Train a fresh model per fold (train + valid), score its test partition, evaluate.

    ``spec`` is a registered model spec (kind ``ltr_model``) or a zero-argument factory returning
    an object with ``fit(train, valid)`` and ``predict(data, name=...)`` (e.g. a baseline wrapper).
    ``save_dir`` keeps each fold's model under ``save_dir/fold<k>`` (atomic, with manifest; an existing
    model there is replaced only with ``overwrite``).
    """
    from rankstack.evaluate import evaluate

    if not folds:
        raise InputError("no folds to cross-validate", fix="build them with letor_folds(folder)")
    if callable(spec) and not label:
        raise InputError("a model factory needs a label", fix="pass label=...")
    label = label or spec_label(spec)
    results: list[FoldResult] = []
    for fold in folds:
        start = time.perf_counter()
        model = spec() if callable(spec) else build_model(spec, seed=seed, num_threads=num_threads)
        model.fit(fold.train, fold.valid)
        run = model.predict(fold.test, name=label)
        ev = evaluate(run, fold.test.qrels(), list(measures))
        info: dict[str, Any] = {}
        if getattr(model, "best_iteration", None):
            info["best_iteration"] = int(model.best_iteration)
        if getattr(model, "trials", None):
            info["chosen"] = {k: model.tree_params[k] for k in model.grid}
        if getattr(model, "best_epoch", None) is not None:
            info["best_epoch"] = model.best_epoch
        if save_dir is not None:
            model.save(Path(save_dir) / fold.name, overwrite=overwrite)
        results.append(FoldResult(fold, dict(ev.mean), run, len(ev.queries),
                                  len(no_relevant_queries(fold.test)), time.perf_counter() - start, info))
        log.info("%s %s: %s", label, fold.name, {m: round(v, 4) for m, v in ev.mean.items()})
    run = Run.concat([r.run for r in results], name=label)
    qrels = _all_qrels(folds)
    ev = evaluate(run, qrels, list(measures))
    n_norel = sum(r.n_no_relevant for r in results)
    return CVResult(label, list(measures), dict(ev.mean), results, run, qrels, n_norel)


def _all_qrels(folds: Sequence[Fold]) -> Qrels:
    import numpy as np

    tests = [f.test for f in folds]
    return Qrels(np.concatenate([t.qids for t in tests]), np.concatenate([t.docids for t in tests]),
                 np.concatenate([t.labels for t in tests]), name="letor")


def compare_models(results: Sequence[CVResult], measures: Sequence[str] | None = None,
                   baseline: str | None = None):
    """Paired comparison over all test queries (``rankstack.evaluate.compare``); first result = baseline."""
    from rankstack.evaluate import compare

    if len(results) < 2:
        raise InputError("compare needs at least two models", fix="pass --model more than once")
    names = [r.model for r in results]
    if len(set(names)) != len(names):
        raise InputError(f"two models have the same label ({names})", fix="give specs distinct arguments")
    runs = {r.model: r.run for r in results}
    return compare(runs, results[0].qrels, list(measures or results[0].measures),
                   baseline=baseline or names[0])
