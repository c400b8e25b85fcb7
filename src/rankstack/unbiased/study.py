"""The ULTR study's library pieces: the production (logging) ranker, click simulation, evaluation, tables.

Setup (Ai et al., SIGIR 2018; ULTRA): a *production ranker* -- LambdaMART trained on the true labels
of 1% of the training fold's queries -- ranks each training query; simulated users see its top-10
(queries drawn uniformly from the training fold) and click following a click model. Every learner
then trains the same scorer on those clicks only, and is scored by nDCG@10 on the test fold's true
labels with ``rankstack.evaluate`` (trec_eval convention: a query without any relevant document
scores 0 -- about a quarter of MQ2008's queries; ``nDCG@10 (rel>0)`` averages only the others).

:func:`simulate_clicks` is the one click simulation: ``rankstack clicks simulate`` and the study
(:mod:`rankstack.recipes.ultr`) both call it, and both describe it with :meth:`SimulatedClicks.meta`.
The workflow itself (configs, folds x etas, outputs) lives in :mod:`rankstack.recipes.ultr`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rankstack.data.letor import LetorData
from rankstack.errors import InputError
from rankstack.unbiased.click_models import ClickModel, simulate_sessions, topk_lists
from rankstack.unbiased.clicklog import ClickLog

__all__ = ["PRODUCTION_POLICIES", "STUDY_ESTIMATORS", "ProductionRanker", "train_production_ranker",
           "shown_lists", "SimulatedClicks", "simulate_clicks", "evaluate_model", "summarise", "ndcg_table"]

log = logging.getLogger(__name__)

#: Logging policies: the standard 1% LambdaMART, or the same model ranking worst-first -- a stress
#: test in which clicks disagree with the logger's order, so position bias hurts naive learning.
PRODUCTION_POLICIES = ("lambdamart", "inverted")

#: Learners the study compares (``full-info`` and ``production`` are the references).
STUDY_ESTIMATORS = ("naive", "ips-oracle", "ips-swap", "dla", "rem")


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


@dataclass
class SimulatedClicks:
    """One simulation: the logging ranker, what it showed, the sessions and (optionally) swap interventions."""

    production: ProductionRanker
    click_model: ClickModel
    qids: list[str]
    docids: np.ndarray
    labels: np.ndarray
    lengths: np.ndarray
    log: ClickLog
    interventions: ClickLog | None
    top_k: int

    @property
    def top1(self) -> dict[str, str]:
        """Each query's rank-1 document (swap interventions move it; the swap estimate needs it)."""
        return {q: str(d[0]) for q, d in zip(self.qids, self.docids)}

    def true_propensities(self) -> list[float] | None:
        """The simulator's relative examination ``p_k / p_1`` (None when it depends on clicks)."""
        exam = self.click_model.examination(self.top_k)
        return None if exam is None else (exam / exam[0]).tolist()

    def meta(self) -> dict[str, Any]:
        """The description a click log is saved with (``<log>.meta.json``); one spelling of every key."""
        return {"click_model": self.click_model.spec(), "sessions": len(self.log), "top_k": self.top_k,
                "production_queries": self.production.queries, "true_propensities": self.true_propensities(),
                "top1": self.top1}


def simulate_clicks(fold: Any, click_model: ClickModel, *, sessions: int, top_k: int = 10,
                    production_fraction: float = 0.01, production: str = "lambdamart", seed: int = 0,
                    stream: Sequence[int] = (), interventions: int = 0,
                    log_propensities: bool = True) -> SimulatedClicks:
    """Train the production ranker on ``fold.train``, show its top-``k``, simulate ``sessions`` sessions.

    Seeds: the production ranker uses ``seed + fold.index``; the sessions draw from
    ``default_rng(stream)`` and the ``interventions`` swap sessions from ``default_rng([*stream, 1])``
    (``stream`` defaults to ``[seed, fold.index]``), so a caller varying another factor (the study's
    eta) adds it to ``stream`` and every stream stays independent and reproducible.
    """
    from rankstack.unbiased.propensity import simulate_swap_interventions

    stream = list(stream) or [seed, int(fold.index)]
    ranker = train_production_ranker(fold.train, production_fraction, seed=seed + fold.index, policy=production)
    qids, docids, labels, lengths = shown_lists(fold.train, ranker.scores(fold.train), top_k)
    clicks = simulate_sessions(click_model, qids, docids, labels, lengths, sessions, np.random.default_rng(stream),
                               log_propensities=log_propensities)
    inter = None
    if interventions:
        inter = simulate_swap_interventions(click_model, qids, docids, labels, lengths, interventions,
                                            np.random.default_rng([*stream, 1]))
    return SimulatedClicks(ranker, click_model, qids, docids, labels, lengths, clicks, inter, top_k)


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


