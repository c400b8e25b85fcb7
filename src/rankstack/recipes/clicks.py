"""Click simulation for unbiased LTR: a 1% LambdaMART logger, its top-k shown to simulated users, a JSONL log.

Why a recipe: ``rankstack clicks simulate`` and the ULTR study simulate clicks the same way (one
function, :func:`rankstack.unbiased.study.simulate_clicks`); this module adds the command's options
(declared once, in :class:`SimulateConfig`) and writes the log, its ``.meta.json`` description and,
with ``interventions``, the swap-intervention log that ``ultr train --propensities swap`` reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rankstack.errors import InputError
from rankstack.recipes.config import option

__all__ = ["SimulateConfig", "SimulateOutcome", "run", "swap_path", "click_model_from"]


def swap_path(out: str | Path) -> Path:
    """Where the swap-intervention sessions of click log ``out`` are written (``<stem>.swap.jsonl``)."""
    out = Path(out)
    return out.with_name(out.stem + ".swap" + (out.suffix or ".jsonl"))


def click_model_from(spec: str, **args: Any):
    """A click model from its spec (``pbm``, ``dcm(continuation=0.5)``); ``args`` given explicitly win."""
    from rankstack.pipeline.expression import parse_component
    from rankstack.unbiased.click_models import make_click_model

    name, spec_args = parse_component(spec, what="click model")
    return make_click_model(name, **{**spec_args, **args})


@dataclass(frozen=True)
class SimulateConfig:
    """``rankstack clicks simulate``: sessions over one fold's training queries."""

    folds: list[str] = option(help="LETOR partitions S1..S5 (files) or their folder", metavar="F")
    out: Path = option(help="the JSONL click log to write")
    fold: int = option(1, help="fold whose training part is clicked on")
    model: str = option("pbm", metavar="SPEC", help="click model: pbm, cascade, dcm, or e.g. 'dcm(continuation=0.5)'")
    eta: float | None = option(None, help="pbm: severity of position bias (none: the click model's default, 1)")
    eps: float | None = option(None, help="click noise on non-relevant documents (none: the click model's default, "
                                          "0.1)")
    continuation: list[float] | None = option(None, help="dcm: probability of going on after a click, one value or "
                                                         "one per rank (none: the click model's default, 0.5)")
    sessions: int = option(100_000, help="number of sessions")
    top_k: int = option(10, help="documents shown per session")
    production_fraction: float = option(0.01, help="fraction of training queries whose true labels train the "
                                                   "production ranker")
    production: Literal["lambdamart", "inverted"] = option("lambdamart", help="logging policy: the 1 percent LambdaMART, "
                                                                              "or the same model worst-first")
    interventions: int = option(0, help="also write N swap-intervention sessions (rank 1 swapped with a random rank, "
                                        "Joachims et al. 2017) to <out stem>.swap.jsonl, for 'ultr train "
                                        "--propensities swap'")
    propensities: bool = option(True, help="log the simulator's propensities")
    seed: int = option(0, help="random seed")

    def __post_init__(self) -> None:
        if self.sessions < 1:
            raise InputError(f"sessions must be at least 1, got {self.sessions}")
        if self.interventions < 0:
            raise InputError(f"interventions must be 0 or more, got {self.interventions}")
        self.click_model()  # unknown models and bad arguments fail before any data is read

    def click_model(self):
        given = {"eta": self.eta, "eps": self.eps, "continuation": self.continuation}
        return click_model_from(self.model, **{k: v for k, v in given.items() if v is not None})


@dataclass
class SimulateOutcome:
    out: Path
    sessions: int
    queries: int
    clicks_per_session: float
    interventions: Path | None
    meta: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps({"out": str(self.out), "sessions": self.sessions, "queries": self.queries,
                           "clicks_per_session": self.clicks_per_session,
                           "interventions": str(self.interventions) if self.interventions else None})


def run(config: SimulateConfig, *, progress: bool = True) -> SimulateOutcome:
    """Simulate, then write the log, ``<out>.meta.json`` and (with interventions) the swap log."""
    from rankstack.ltr.data import letor_folds
    from rankstack.storage import check_output_file
    from rankstack.unbiased.clicklog import write_clicklog, write_meta
    from rankstack.unbiased.study import simulate_clicks

    inputs = [Path(f) for f in config.folds]
    check_output_file(config.out, inputs)
    model = config.click_model()
    folds = letor_folds(config.folds[0] if len(config.folds) == 1 else config.folds)
    if not 1 <= config.fold <= len(folds):
        raise InputError(f"fold {config.fold} does not exist", fix=f"choose 1..{len(folds)}")
    fold = folds[config.fold - 1]
    sim = simulate_clicks(fold, model, sessions=config.sessions, top_k=config.top_k,
                          production_fraction=config.production_fraction, production=config.production,
                          seed=config.seed, interventions=config.interventions,
                          log_propensities=config.propensities)
    write_clicklog(sim.log, config.out)
    meta = {**sim.meta(), "fold": fold.describe(), "seed": config.seed,
            "production_fraction": config.production_fraction, "production": config.production}
    write_meta(config.out, meta)
    swap = None
    if sim.interventions is not None:
        swap = swap_path(config.out)
        write_clicklog(sim.interventions, swap)
        write_meta(swap, {**meta, "sessions": config.interventions, "interventions": "swap-1-k"})
    return SimulateOutcome(config.out, len(sim.log), len(sim.qids),
                           round(float(sim.log.clicks.sum()) / len(sim.log), 4), swap, meta)
