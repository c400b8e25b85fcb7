"""Unbiased learning to rank workflows: learn from a click log (``ultr train``) and the whole study.

Why a recipe: the command line, the TOML study files (``examples/ultr_mq2008.toml``) and the service
run the same workflow with the same defaults, declared once in :class:`TrainConfig` and
:class:`StudyConfig` (TOML keys = field names; a ``fit`` table holds
:class:`rankstack.unbiased.estimators.FitConfig` settings). The library pieces -- logger, click
simulation, learners, propensity estimates, tables -- live in :mod:`rankstack.unbiased`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rankstack.errors import InputError, UnknownComponentError
from rankstack.recipes.config import option, to_dict

__all__ = ["TrainConfig", "TrainOutcome", "run_train", "StudyConfig", "StudyOutcome", "run", "run_fold",
           "load_config", "resolve_propensities"]

log = logging.getLogger(__name__)


def _fit_config(overrides: dict[str, Any], **given: Any):
    from rankstack.unbiased.estimators import FitConfig

    cfg = FitConfig.from_dict(overrides)
    for key, value in given.items():
        if value is not None:
            setattr(cfg, key, value)
    return cfg


def _check_estimator(name: str) -> None:
    """Unknown learner names fail with the registry's did-you-mean (kind ``estimator``)."""
    from rankstack.registry import lookup, names

    if name == "full-info":
        return
    if names("estimator"):
        lookup(name, "estimator")
        return
    from rankstack.unbiased.estimators import ESTIMATORS  # until estimators are registered

    if name not in ESTIMATORS:
        raise UnknownComponentError(name, "estimator", [*ESTIMATORS, "full-info"])


def _fold(folds: list[str], index: int):
    from rankstack.ltr.data import letor_folds

    all_folds = letor_folds(folds[0] if len(folds) == 1 else folds)
    if not 1 <= index <= len(all_folds):
        raise InputError(f"fold {index} does not exist", fix=f"choose 1..{len(all_folds)}")
    return all_folds[index - 1]


def resolve_propensities(src: str, clicks: Path) -> str | np.ndarray:
    """IPS propensities: ``logged``, ``swap`` (estimated from ``<clicks stem>.swap.jsonl``) or values by rank."""
    if src == "logged":
        return "logged"
    if src == "swap":
        from rankstack.recipes.clicks import swap_path
        from rankstack.unbiased.clicklog import read_clicklog, read_meta
        from rankstack.unbiased.propensity import estimate_swap_propensities

        meta = read_meta(clicks)
        if meta is None or "top1" not in meta:
            raise InputError("propensities 'swap' need the log's description with the production ranker's top "
                             "documents", path=clicks.with_name(clicks.name + ".meta.json"),
                             fix="simulate with 'rankstack clicks simulate --interventions N'")
        est, _ = estimate_swap_propensities(read_clicklog(swap_path(clicks)), meta["top1"], int(meta.get("top_k", 10)))
        return est
    try:
        return np.array([float(v) for v in src.split(",")])
    except ValueError:
        raise InputError(f"propensities {src!r} are not 'logged', 'swap' or numbers",
                         fix="e.g. --propensities 1,0.9,0.7,0.5") from None


@dataclass(frozen=True)
class TrainConfig:
    """``rankstack ultr train``: learn from a click log, evaluate on the fold's test part (nDCG@10)."""

    clicks: Path = option(help="JSONL click log (rankstack clicks simulate)")
    folds: list[str] = option(help="LETOR partitions S1..S5 or their folder", metavar="F")
    estimator: str = option(help="learner: naive, ips, dla, rem, or full-info (ignores the clicks and trains on the "
                                 "true labels: the reference)")
    fold: int = option(1, help="the fold the clicks were simulated on")
    propensities: str = option("logged", metavar="SRC",
                               help="ips: 'logged' (the log's propensities; oracle for simulated logs), 'swap' "
                                    "(estimate from <clicks stem>.swap.jsonl interventions) or comma-separated values "
                                    "by rank")
    hidden: list[int] = option([], help="MLP hidden sizes, e.g. --hidden 32 (none: a linear scorer)")
    epochs: int | None = option(None, help="training epochs (none: FitConfig's)")
    lr: float | None = option(None, help="learning rate (none: FitConfig's)")
    max_weight: float | None = option(None, help="clip inverse-propensity weights (none: no clipping)")
    seed: int = option(0, help="random seed")
    out: Path | None = option(None, help="save the trained scorer here (LTR neural model folder)")
    overwrite: bool = option(False, help="replace a model already saved at --out")
    json: Path | None = option(None, help="write nDCG@10 and estimated propensities as JSON")

    def __post_init__(self) -> None:
        _check_estimator(self.estimator)


@dataclass
class TrainOutcome:
    result: dict[str, Any]
    model: Any = dataclasses.field(repr=False)

    def to_json(self) -> str:
        return json.dumps(self.result, indent=1)


def run_train(config: TrainConfig, *, progress: bool = True) -> TrainOutcome:
    """Aggregate the log over the fold's training part, train the estimator, evaluate on the test part."""
    from rankstack.storage import atomic_write_text, check_output_file
    from rankstack.unbiased.clicklog import read_clicklog
    from rankstack.unbiased.estimators import aggregate, train_estimator, train_full_info
    from rankstack.unbiased.study import evaluate_model

    inputs = [config.clicks, *map(Path, config.folds)]
    if config.json is not None:
        check_output_file(config.json, inputs)
    cfg = _fit_config({"hidden": config.hidden, "seed": config.seed}, epochs=config.epochs, lr=config.lr,
                      max_weight=config.max_weight)
    fold = _fold(config.folds, config.fold)
    if config.estimator == "full-info":
        model = train_full_info(fold.train, cfg)
    else:
        lists = aggregate(read_clicklog(config.clicks), fold.train)
        props = resolve_propensities(config.propensities, config.clicks) if config.estimator == "ips" else None
        model = train_estimator(config.estimator, lists, cfg, props)
    result = {"estimator": config.estimator, "fold": fold.index, **evaluate_model(model, fold.test),
              "propensities": None if model.propensities is None else [round(float(p), 5) for p in model.propensities],
              "fit": cfg.to_dict()}
    if config.out is not None:
        model.ranker.save(config.out, overwrite=config.overwrite)
        result["model"] = str(config.out)
    outcome = TrainOutcome(result, model)
    if config.json is not None:
        atomic_write_text(config.json, outcome.to_json() + "\n", inputs=inputs, kind="json")
    return outcome


# ----------------------------------------------------------------------------- the study
@dataclass(frozen=True)
class StudyConfig:
    """Everything that defines a study run (recorded in its results JSON); TOML keys are these names."""

    folds: list[str] = option(["../shared/data/letor/MQ2008"], metavar="F", help="LETOR partitions or their folder")
    fold_ids: list[int] = option([1, 2, 3, 4, 5], help="which folds")
    etas: list[float] = option([1.0, 2.0], help="PBM severities (examination = base_k ** eta)")
    click_model: str = option("pbm", metavar="SPEC", help="click model: pbm, cascade, dcm or e.g. "
                                                          "'dcm(continuation=0.5)'")
    click_args: dict[str, Any] = option({}, help="more click model arguments (TOML table)")
    sessions: int = option(100_000, help="training sessions per (fold, eta)")
    intervention_sessions: int = option(100_000, help="extra swap-intervention sessions for ips-swap")
    top_k: int = option(10, help="documents shown per session")
    production_fraction: float = option(0.01, help="share of training queries whose true labels train the logger")
    production: Literal["lambdamart", "inverted"] = option("lambdamart", help="logging policy (inverted: the same "
                                                                              "model worst first, a stress test)")
    estimators: list[str] = option(["naive", "ips-oracle", "ips-swap", "dla", "rem"], help="learners to compare")
    seed: int = option(0, help="random seed")
    fit: dict[str, Any] = option({}, help="scorer and optimiser settings (FitConfig keys; TOML [fit] table)")
    out: Path | None = option(None, help="output folder (results.json, report.md, propensity plots)")

    def __post_init__(self) -> None:
        from rankstack.unbiased.study import STUDY_ESTIMATORS

        for name in self.estimators:
            if name not in STUDY_ESTIMATORS:
                raise UnknownComponentError(name, "study estimator", STUDY_ESTIMATORS)
        self.click_model_for(1.0)  # unknown click models / arguments fail before any work
        self.fit_config()

    def click_model_for(self, eta: float):
        from rankstack.recipes.clicks import click_model_from

        name = self.click_model.split("(", 1)[0].strip()
        return click_model_from(self.click_model, **({"eta": eta} if name == "pbm" else {}), **self.click_args)

    def fit_config(self):
        return _fit_config(self.fit)

    def to_dict(self) -> dict[str, Any]:
        return {**to_dict(self), "fit": self.fit_config().to_dict()}


def load_config(path: str | Path) -> StudyConfig:
    """A StudyConfig from a TOML file (top-level keys as :class:`StudyConfig`, a ``[fit]`` table)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    from rankstack.data.textfile import check_file
    from rankstack.recipes.config import from_mapping

    p = check_file(path, "study config")
    try:
        d = tomllib.loads(p.read_text("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid TOML ({exc})", path=p) from None
    except RecursionError:
        raise InputError("not valid TOML (values nested too deeply)", path=p) from None
    if isinstance(d.get("folds"), str):
        d["folds"] = [d["folds"]]
    try:
        return from_mapping(StudyConfig, d, source=str(p))
    except UnknownComponentError as exc:
        raise InputError(str(exc), path=p) from None


def run_fold(fold: Any, eta: float, cfg: StudyConfig) -> dict[str, Any]:
    """Simulate, train every estimator and the references, evaluate. Returns a JSON-able dict."""
    from rankstack.unbiased.estimators import ULTRModel, aggregate, train_dla, train_full_info, train_ips, \
        train_naive, train_rem
    from rankstack.unbiased.propensity import estimate_swap_propensities
    from rankstack.unbiased.study import evaluate_model, simulate_clicks

    t0 = time.time()
    fit = cfg.fit_config()
    stream = [cfg.seed, int(fold.index), int(round(eta * 1000))]
    sim = simulate_clicks(fold, cfg.click_model_for(eta), sessions=cfg.sessions, top_k=cfg.top_k,
                          production_fraction=cfg.production_fraction, production=cfg.production, seed=cfg.seed,
                          stream=stream,
                          interventions=cfg.intervention_sessions if "ips-swap" in cfg.estimators else 0)
    lists = aggregate(sim.log, fold.train)
    out: dict[str, Any] = {"fold": fold.index, "letor_fold": fold.letor_name, "eta": eta,
                           "production_queries": sim.production.queries, "sessions": cfg.sessions,
                           "clicks_per_session": float(sim.log.clicks.sum() / len(sim.log)),
                           "true_propensities": sim.true_propensities(),
                           "ndcg": {}, "propensities": {}, "seconds": {}}

    def record(name: str, model: Any, started: float) -> None:
        out["ndcg"][name] = evaluate_model(model, fold.test)
        out["seconds"][name] = round(time.time() - started, 2)
        if getattr(model, "propensities", None) is not None and name != "ips-oracle":
            out["propensities"][name] = np.asarray(model.propensities, float).tolist()
        log.info("fold %d eta %g %-10s nDCG@10 %.4f (%.1fs)", fold.index, eta, name,
                 out["ndcg"][name]["nDCG@10"], out["seconds"][name])

    s = time.time()
    record("production", sim.production, s)
    s = time.time()
    record("full-info", train_full_info(fold.train, fit), s)
    for name in cfg.estimators:
        s = time.time()
        model: ULTRModel
        if name == "naive":
            model = train_naive(lists, fit)
        elif name == "ips-oracle":
            model = train_ips(lists, "logged", fit, name=name)
        elif name == "ips-swap":
            est, _ = estimate_swap_propensities(sim.interventions, sim.top1, cfg.top_k)
            model = train_ips(lists, est, fit, name=name)
        elif name == "dla":
            model = train_dla(lists, fit)
        else:
            model = train_rem(lists, fit)
        record(name, model, s)
    out["seconds"]["total"] = round(time.time() - t0, 1)
    return out


@dataclass
class StudyOutcome:
    payload: dict[str, Any]
    out: Path

    def to_text(self) -> str:
        from rankstack.unbiased.study import ndcg_table

        return ndcg_table(self.payload["summary"])


def run(config: StudyConfig, *, progress: bool = True) -> StudyOutcome:
    """Run every (fold, eta) of ``config``; write ``results.json``, ``report.md`` and propensity PNGs.

    The output folder is a ``ultr-study`` artefact: written crash-safely, it replaces only an earlier
    study folder, never a folder of anything else. ``results.partial.jsonl`` grows in the hidden
    temporary folder while the study runs.
    """
    from rankstack.ltr.data import letor_folds
    from rankstack.storage import atomic_directory, atomic_write_text, write_manifest
    from rankstack.unbiased.propensity import plot_propensities, propensity_table
    from rankstack.unbiased.study import ndcg_table, summarise

    if config.out is None:
        raise InputError("the study needs an output folder", fix="pass --out DIR (or out = \"DIR\" in the TOML)")
    out_dir = Path(config.out)
    inputs = [Path(f) for f in config.folds]
    folds = letor_folds(config.folds[0] if len(config.folds) == 1 else config.folds)
    by_index = {f.index: f for f in folds}
    bad = [i for i in config.fold_ids if i not in by_index]
    if bad:
        raise InputError(f"fold(s) {bad} do not exist (there are {len(folds)})",
                         fix=f"choose fold ids in 1..{len(folds)}")
    with atomic_directory(out_dir, overwrite=True, inputs=inputs) as tmp:
        results = []
        for eta in config.etas:
            for i in config.fold_ids:
                results.append(run_fold(by_index[i], float(eta), config))
                atomic_write_text(tmp / "results.partial.jsonl", "".join(json.dumps(x) + "\n" for x in results),
                                  inputs=inputs)
        summary = summarise(results)
        report = [f"# ULTR study ({config.click_model}, {config.sessions} sessions, folds {config.fold_ids}, "
                  f"logging policy {config.production})", "", ndcg_table(summary), ""]
        for eta, s in summary.items():
            if s["true_propensities"] is None or not s["propensities"]:
                continue
            report += [f"## Relative propensities, eta={eta} (mean over folds)", "",
                       propensity_table(s["true_propensities"], s["propensities"]), ""]
            plot_propensities(s["true_propensities"], s["propensities_per_fold"], tmp / f"propensities_eta{eta}.png",
                              title=f"{config.click_model} eta={eta}: p_k/p_1 (mean, min-max over folds)")
        payload = {"config": config.to_dict(), "summary": summary, "runs": results}
        atomic_write_text(tmp / "results.json", json.dumps(payload, indent=1) + "\n", inputs=inputs)
        atomic_write_text(tmp / "report.md", "\n".join(report), inputs=inputs)
        (tmp / "results.partial.jsonl").unlink(missing_ok=True)
        write_manifest(tmp, "ultr-study", 1, {"click_model": config.click_model, "sessions": config.sessions})
    return StudyOutcome(payload, out_dir)
