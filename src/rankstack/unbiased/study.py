"""The ULTR study: simulate clicks on LETOR folds, learn with every estimator, evaluate on true labels.

Setup (Ai et al., SIGIR 2018; ULTRA): a *production ranker* -- LambdaMART trained on the true labels
of 1% of the training fold's queries -- ranks each training query; simulated users see its top-10
(queries drawn uniformly from the training fold) and click following a click model. Every learner
then trains the same scorer on those clicks only, and is scored by nDCG@10 on the test fold's true
labels with ``rankstack.evaluate`` (trec_eval convention: a query without any relevant document
scores 0 -- about a quarter of MQ2008's queries; ``nDCG@10 (rel>0)`` averages only the others).
Propensity estimates (swap interventions, DLA, regression EM) are compared with the simulator's.

Nothing peeks at true training labels except the 1% production ranker and the full-information
reference; no model selection uses true labels (fixed epochs for every learner).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.data.letor import LetorData
from rankstack.errors import InputError
from rankstack.unbiased.click_models import ClickModel, make_click_model, simulate_sessions, topk_lists
from rankstack.unbiased.clicklog import ClickLog
from rankstack.unbiased.estimators import (
    FitConfig,
    ULTRModel,
    aggregate,
    train_dla,
    train_full_info,
    train_ips,
    train_naive,
    train_rem,
)

__all__ = ["StudyConfig", "ProductionRanker", "train_production_ranker", "shown_lists", "simulate_fold",
           "run_fold", "run_study", "STUDY_ESTIMATORS", "evaluate_model", "summarise", "load_config"]

log = logging.getLogger(__name__)

#: Logging policies: the standard 1% LambdaMART, or the same model ranking worst-first -- a stress
#: test in which clicks disagree with the logger's order, so position bias hurts naive learning.
PRODUCTION_POLICIES = ("lambdamart", "inverted")

#: Learners the study compares (``full-info`` and ``production`` are the references).
STUDY_ESTIMATORS = ("naive", "ips-oracle", "ips-swap", "dla", "rem")


@dataclass
class StudyConfig:
    """Everything that defines a study run (recorded in its results JSON)."""

    folds: list[str] = field(default_factory=lambda: ["../shared/data/letor/MQ2008"])
    fold_ids: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    etas: list[float] = field(default_factory=lambda: [1.0, 2.0])
    click_model: str = "pbm"
    click_args: dict[str, Any] = field(default_factory=dict)
    sessions: int = 100_000
    intervention_sessions: int = 100_000
    top_k: int = 10
    production_fraction: float = 0.01
    production: str = "lambdamart"
    estimators: list[str] = field(default_factory=lambda: list(STUDY_ESTIMATORS))
    seed: int = 0
    fit: FitConfig = field(default_factory=FitConfig)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "fit"}
        d["fit"] = self.fit.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StudyConfig:
        d = dict(d)
        known = set(cls.__dataclass_fields__)
        bad = sorted(set(d) - known)
        if bad:
            raise InputError(f"unknown study setting(s) {bad}", fix=f"settings are {', '.join(sorted(known))}")
        fit = FitConfig.from_dict(d.pop("fit", {}))
        cfg = cls(**d, fit=fit)
        unknown = sorted(set(cfg.estimators) - set(STUDY_ESTIMATORS))
        if unknown:
            raise InputError(f"unknown estimator(s) {unknown}", fix=f"choose from {', '.join(STUDY_ESTIMATORS)}")
        if cfg.production not in PRODUCTION_POLICIES:
            raise InputError(f"unknown production policy {cfg.production!r}",
                             fix=f"choose one of {', '.join(PRODUCTION_POLICIES)}")
        if isinstance(cfg.folds, str):
            cfg.folds = [cfg.folds]
        return cfg


def load_config(path: str | Path) -> StudyConfig:
    """A StudyConfig from a TOML file (top-level keys as :class:`StudyConfig`, a ``[fit]`` table)."""
    import tomllib

    from rankstack.data.textfile import check_file

    p = check_file(path, "study config")
    try:
        d = tomllib.loads(p.read_text("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid TOML ({exc})", path=p) from None
    try:
        return StudyConfig.from_dict(d)
    except InputError as exc:
        raise InputError(exc.problem, path=p, fix=exc.fix) from None


# ----------------------------------------------------------------------------- production ranker
@dataclass
class ProductionRanker:
    """The logging policy: a LambdaMART trained on a small labelled fraction of the training queries."""

    model: Any
    queries: list[str]
    sign: float = 1.0

    def scores(self, data: LetorData) -> np.ndarray:
        return self.sign * self.model.predict_scores(data)

    def predict_scores(self, data: LetorData) -> np.ndarray:
        return self.scores(data)


def _subset(data: LetorData, qids: Sequence[str]) -> LetorData:
    keep = np.isin(data.qids, np.asarray(list(qids), dtype=str))
    return LetorData(data.qids[keep], data.docids[keep], data.labels[keep], data.features[keep], data.name)


def train_production_ranker(train: LetorData, fraction: float = 0.01, seed: int = 0,
                            policy: str = "lambdamart") -> ProductionRanker:
    """LambdaMART (``rankstack.ltr.gbdt``) on the true labels of ``fraction`` of the training queries.

    At least one query with a relevant document is included (a ranker trained on all-zero labels
    would be a random logging policy, not the weak-but-real one the setup wants). Small trees and a
    fixed 100 rounds: there is no validation data for a 1% ranker.
    """
    from rankstack.ltr.gbdt import LambdaMART

    if not 0 < fraction <= 1:
        raise InputError(f"production fraction must be in (0, 1], got {fraction!r}")
    rng = np.random.default_rng(seed)
    queries = train.query_ids
    n = max(1, math.ceil(fraction * len(queries)))
    offsets = train.group_offsets()
    has_rel = np.maximum.reduceat(train.labels, offsets[:-1]) > 0
    for _ in range(100):
        pick = sorted(rng.choice(len(queries), size=n, replace=False).tolist())
        if has_rel[pick].any():
            break
    chosen = [queries[i] for i in pick]
    model = LambdaMART(num_boost_round=100, early_stopping_rounds=0, num_leaves=7, min_data_in_leaf=5,
                       learning_rate=0.1, seed=seed, num_threads=1)
    model.fit(_subset(train, chosen))
    if policy not in PRODUCTION_POLICIES:
        raise InputError(f"unknown production policy {policy!r}", fix=f"choose one of {', '.join(PRODUCTION_POLICIES)}")
    return ProductionRanker(model, chosen, -1.0 if policy == "inverted" else 1.0)


def shown_lists(data: LetorData, scores: np.ndarray, top_k: int):
    """The production ranker's top-``k`` of each query: ``(qids, docids [Q,k], labels [Q,k], lengths)``."""
    return topk_lists(data.qids, data.docids, data.labels, scores, top_k)


def simulate_fold(train: LetorData, production: ProductionRanker, model: ClickModel, sessions: int,
                  top_k: int, rng: np.random.Generator) -> ClickLog:
    """``sessions`` simulated sessions on the training queries' production top-``k``."""
    qids, docids, labels, lengths = shown_lists(train, production.scores(train), top_k)
    return simulate_sessions(model, qids, docids, labels, lengths, sessions, rng)


# ----------------------------------------------------------------------------- evaluation
def evaluate_model(model: Any, test: LetorData) -> dict[str, float]:
    """nDCG@10 on ``test`` (trec_eval: no-relevant queries score 0) and over queries with a relevant doc."""
    from rankstack.evaluate import evaluate
    from rankstack.ltr.data import no_relevant_queries, scores_to_run

    scores = model.predict_scores(test) if hasattr(model, "predict_scores") else model.scores(test)
    ev = evaluate(scores_to_run(test, scores), test.qrels(), ["nDCG@10"])
    empty = set(no_relevant_queries(test))
    per_q = ev.per_query["nDCG@10"]
    rel = [v for q, v in per_q.items() if q not in empty]
    return {"nDCG@10": float(ev.mean["nDCG@10"]), "nDCG@10 (rel>0)": float(np.mean(rel)) if rel else float("nan")}


# ----------------------------------------------------------------------------- one fold
def run_fold(fold: Any, eta: float, cfg: StudyConfig) -> dict[str, Any]:
    """Simulate, train every estimator and the references, evaluate. Returns a JSON-able dict."""
    from rankstack.unbiased.propensity import estimate_swap_propensities, simulate_swap_interventions

    t0 = time.time()
    seed = [cfg.seed, int(fold.index), int(round(eta * 1000))]
    production = train_production_ranker(fold.train, cfg.production_fraction, seed=cfg.seed + fold.index,
                                         policy=cfg.production)
    click_model = make_click_model(cfg.click_model, **({"eta": eta} if cfg.click_model == "pbm" else {}),
                                   **cfg.click_args)
    qids, docids, labels, lengths = shown_lists(fold.train, production.scores(fold.train), cfg.top_k)
    rng = np.random.default_rng(seed)
    clicks = simulate_sessions(click_model, qids, docids, labels, lengths, cfg.sessions, rng)
    lists = aggregate(clicks, fold.train)
    exam = click_model.examination(cfg.top_k)
    out: dict[str, Any] = {"fold": fold.index, "letor_fold": fold.letor_name, "eta": eta,
                           "production_queries": production.queries, "sessions": cfg.sessions,
                           "clicks_per_session": float(clicks.clicks.sum() / len(clicks)),
                           "true_propensities": None if exam is None else (exam / exam[0]).tolist(),
                           "ndcg": {}, "propensities": {}, "seconds": {}}

    def record(name: str, model: Any, started: float) -> None:
        out["ndcg"][name] = evaluate_model(model, fold.test)
        out["seconds"][name] = round(time.time() - started, 2)
        if getattr(model, "propensities", None) is not None and name != "ips-oracle":
            out["propensities"][name] = np.asarray(model.propensities, float).tolist()
        log.info("fold %d eta %g %-10s nDCG@10 %.4f (%.1fs)", fold.index, eta, name,
                 out["ndcg"][name]["nDCG@10"], out["seconds"][name])

    s = time.time()
    record("production", production, s)
    s = time.time()
    record("full-info", train_full_info(fold.train, cfg.fit), s)
    for name in cfg.estimators:
        s = time.time()
        if name == "naive":
            model: ULTRModel = train_naive(lists, cfg.fit)
        elif name == "ips-oracle":
            model = train_ips(lists, "logged", cfg.fit, name=name)
        elif name == "ips-swap":
            inter = simulate_swap_interventions(click_model, qids, docids, labels, lengths,
                                                cfg.intervention_sessions, np.random.default_rng([*seed, 1]))
            top1 = {q: str(d[0]) for q, d in zip(qids, docids)}
            est, _ = estimate_swap_propensities(inter, top1, cfg.top_k)
            model = train_ips(lists, est, cfg.fit, name=name)
        elif name == "dla":
            model = train_dla(lists, cfg.fit)
        elif name == "rem":
            model = train_rem(lists, cfg.fit)
        else:  # pragma: no cover - from_dict validates
            raise InputError(f"unknown estimator {name!r}")
        record(name, model, s)
    out["seconds"]["total"] = round(time.time() - t0, 1)
    return out


# ----------------------------------------------------------------------------- whole study
def summarise(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean over folds per eta: nDCG per learner, ratio to full information, propensities."""
    by_eta: dict[str, Any] = {}
    for eta in sorted({r["eta"] for r in results}):
        rs = [r for r in results if r["eta"] == eta]
        names = list(rs[0]["ndcg"])
        full = np.mean([r["ndcg"]["full-info"]["nDCG@10"] for r in rs])
        table = {}
        for nm in names:
            vals = [r["ndcg"][nm]["nDCG@10"] for r in rs]
            vals_rel = [r["ndcg"][nm]["nDCG@10 (rel>0)"] for r in rs]
            table[nm] = {"nDCG@10": float(np.mean(vals)), "std": float(np.std(vals)),
                         "nDCG@10 (rel>0)": float(np.mean(vals_rel)),
                         "fraction of full-info": float(np.mean(vals) / full) if full > 0 else float("nan"),
                         "per_fold": vals}
        props = {nm: np.mean([r["propensities"][nm] for r in rs if nm in r["propensities"]], 0).tolist()
                 for nm in rs[0]["propensities"]}
        by_eta[str(eta)] = {"folds": [r["fold"] for r in rs], "ndcg": table, "true_propensities":
                            rs[0]["true_propensities"], "propensities": props,
                            "propensities_per_fold": {nm: [r["propensities"][nm] for r in rs if nm in r["propensities"]]
                                                      for nm in rs[0]["propensities"]}}
    return by_eta


def ndcg_table(summary: Mapping[str, Any]) -> str:
    """Markdown: one row per learner, columns per eta (mean nDCG@10 over folds, % of full-info)."""
    etas = list(summary)
    names = list(next(iter(summary.values()))["ndcg"])
    head = "| learner | " + " | ".join(f"eta={e}: nDCG@10 | % full | nDCG@10 (rel>0)" for e in etas) + " |"
    lines = [head, "|---|" + "---:|---:|---:|" * len(etas)]
    for nm in names:
        cells = []
        for e in etas:
            row = summary[e]["ndcg"][nm]
            cells.append(f"{row['nDCG@10']:.4f} ± {row['std']:.4f} | {100 * row['fraction of full-info']:.1f}% | "
                         f"{row['nDCG@10 (rel>0)']:.4f}")
        lines.append(f"| {nm} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_study(cfg: StudyConfig, out_dir: str | Path) -> dict[str, Any]:
    """Run every (fold, eta) of ``cfg``; write ``results.json``, ``report.md`` and propensity PNGs."""
    from rankstack.ltr.data import letor_folds
    from rankstack.storage import atomic_write_text
    from rankstack.unbiased.propensity import plot_propensities, propensity_table

    out_dir = Path(out_dir)
    folds = letor_folds(cfg.folds[0] if len(cfg.folds) == 1 else cfg.folds)
    by_index = {f.index: f for f in folds}
    bad = [i for i in cfg.fold_ids if i not in by_index]
    if bad:
        raise InputError(f"fold(s) {bad} do not exist (there are {len(folds)})",
                         fix=f"choose fold ids in 1..{len(folds)}")
    results = []
    partial = out_dir / "results.partial.jsonl"
    for eta in cfg.etas:
        for i in cfg.fold_ids:
            r = run_fold(by_index[i], float(eta), cfg)
            results.append(r)
            out_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(partial, "".join(json.dumps(x) + "\n" for x in results))
    summary = summarise(results)
    report = [f"# ULTR study ({cfg.click_model}, {cfg.sessions} sessions, folds {cfg.fold_ids}, "
              f"logging policy {cfg.production})", "",
              ndcg_table(summary), ""]
    for eta, s in summary.items():
        if s["true_propensities"] is None or not s["propensities"]:
            continue
        report += [f"## Relative propensities, eta={eta} (mean over folds)", "",
                   propensity_table(s["true_propensities"], s["propensities"]), ""]
        plot_propensities(s["true_propensities"], s["propensities_per_fold"],
                          out_dir / f"propensities_eta{eta}.png",
                          title=f"{cfg.click_model} eta={eta}: p_k/p_1 (mean, min-max over folds)")
    payload = {"config": cfg.to_dict(), "summary": summary, "runs": results}
    atomic_write_text(out_dir / "results.json", json.dumps(payload, indent=1) + "\n")
    atomic_write_text(out_dir / "report.md", "\n".join(report))
    return payload
