"""Rank and score fusion of runs, and ``fuse(a, b, ...)``: the Stage that runs its inputs and fuses them.

Methods (each a plain function over :class:`~rankstack.types.Run` objects):

- ``rrf``: reciprocal rank fusion, ``sum_i w_i / (k + rank_i(d))`` with k = 60 (Cormack, Clarke &
  Büttcher, "Reciprocal Rank Fusion outperforms Condorcet and individual Rank Learning Methods",
  SIGIR 2009). Needs no score calibration, which is why it is the robust default for BM25 + dense.
- ``comb_sum`` / ``comb_mnz``: sum of normalised scores, times the number of runs that retrieved
  the document for MNZ (Fox & Shaw, "Combination of Multiple Searches", TREC-2 1994).
- ``linear``: weighted linear interpolation ``sum_i w_i * norm(s_i)`` (Vogt & Cottrell, "Fusion via
  a linear combination of scores", 1999).
- Normalisations per query: ``min-max`` (Lee, "Analyses of multiple evidence combination", SIGIR
  1997), ``z-score`` (Montague & Aslam, "Relevance score normalization for metasearch", CIKM 2001), or
  ``none``, all from :mod:`rankstack.normalize` (a query whose scores are all equal contributes 0).
  A document a run did not retrieve contributes 0 from that run.

Implementation: written here in vectorised NumPy rather than calling ``ranx.fusion``. ranx would need
each Run converted to its dict-of-dicts (numba typed dicts) and back, plus a ~2 s import and numba
JIT warm-up, for arithmetic that is a few ``np.unique``/``np.bincount`` calls over the columnar Run;
the unit tests check these functions against hand-computed values (and against ranx when installed).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np

from rankstack import normalize
from rankstack.errors import InputError
from rankstack.pipeline.stage import Stage, StageInput
from rankstack.registry import register
from rankstack.types import Run

__all__ = ["rrf", "comb_sum", "comb_mnz", "linear", "normalise", "fuse_runs", "fuse", "FusionStage",
           "METHODS", "NORMS"]

NORMS = ("min-max", "z-score", "none")
METHODS = {"rrf": "rrf", "combsum": "comb_sum", "comb_sum": "comb_sum", "combmnz": "comb_mnz",
           "comb_mnz": "comb_mnz", "linear": "linear", "wsum": "linear", "interpolation": "linear"}


def _group_starts(qids: np.ndarray) -> np.ndarray:
    """Start row of each query's block (Runs are sorted by qid, so blocks are contiguous)."""
    if len(qids) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.r_[True, qids[1:] != qids[:-1]])


def normalise(run: Run, norm: str = "min-max") -> np.ndarray:
    """Per-query normalised scores of ``run`` (row order of the run), by :mod:`rankstack.normalize`.

    min-max maps each query's scores to [0, 1]; z-score subtracts the query's mean and divides by
    its (population) standard deviation; a query whose scores are all equal gets 0 under both (the
    one documented rule of :mod:`rankstack.normalize`).
    """
    if norm not in NORMS:
        raise InputError(f"unknown normalisation {norm!r}", fix=f"choose one of {', '.join(NORMS)}")
    return normalize.normalise(run.scores, normalize.group_offsets(run.qids), norm)


def _check_runs(runs: Sequence[Run], weights: Sequence[float] | None, depth: int | None) -> tuple[list[Run], np.ndarray]:
    runs = list(runs)
    if not runs:
        raise InputError("fusion needs at least one run")
    for r in runs:
        if not isinstance(r, Run):
            raise InputError(f"fusion takes Runs, got {type(r).__name__}")
    if weights is None:
        w = np.ones(len(runs))
    else:
        w = np.asarray(list(weights), dtype=np.float64)
        if w.shape != (len(runs),):
            raise InputError(f"fusion: {len(w)} weights for {len(runs)} runs",
                             fix="give one finite weight per fused run")
        if not np.all(np.isfinite(w)):
            raise InputError(f"fusion: weights must be finite numbers, got {list(weights)!r}",
                             fix="give one finite weight per fused run")
    if depth is not None:
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise InputError(f"fusion: depth must be a positive integer, got {depth!r}")
        runs = [r.top_k(depth) for r in runs]
    return runs, w


def _combine(runs: list[Run], contributions: list[np.ndarray], name: str, mnz: bool = False) -> Run:
    """Sum per-(query, document) contributions over runs (times the hit count for MNZ)."""
    qids = np.concatenate([r.qids for r in runs])
    docids = np.concatenate([r.docids for r in runs])
    values = np.concatenate(contributions).astype(np.float64)
    queries = next((r.queries for r in runs if r.queries is not None), None)
    if len(qids) == 0:
        return Run.empty(name).replace(queries=queries)
    uq, q_code = np.unique(qids, return_inverse=True)
    ud, d_code = np.unique(docids, return_inverse=True)
    pair = q_code.astype(np.int64) * len(ud) + d_code
    upair, inv = np.unique(pair, return_inverse=True)
    total = np.bincount(inv, weights=values, minlength=len(upair))
    if mnz:
        total = total * np.bincount(inv, minlength=len(upair))
    return Run(uq[upair // len(ud)], ud[upair % len(ud)], total, name=name, queries=queries)


def rrf(runs: Sequence[Run], k: float = 60, weights: Sequence[float] | None = None,
        depth: int | None = None, name: str = "rrf") -> Run:
    """Reciprocal rank fusion: ``sum_i w_i / (k + rank_i)`` with 1-based canonical ranks."""
    if isinstance(k, bool) or not isinstance(k, (int, float)) or not 0 <= k < float("inf"):
        raise InputError(f"rrf: k must be a finite non-negative number, got {k!r}")
    runs, w = _check_runs(runs, weights, depth)
    return _combine(runs, [wi / (k + r.ranks()) for r, wi in zip(runs, w)], name)


def comb_sum(runs: Sequence[Run], norm: str = "min-max", weights: Sequence[float] | None = None,
             depth: int | None = None, name: str = "combsum") -> Run:
    """CombSUM: sum of per-query normalised scores (weighted when ``weights`` is given)."""
    runs, w = _check_runs(runs, weights, depth)
    return _combine(runs, [wi * normalise(r, norm) for r, wi in zip(runs, w)], name)


def comb_mnz(runs: Sequence[Run], norm: str = "min-max", weights: Sequence[float] | None = None,
             depth: int | None = None, name: str = "combmnz") -> Run:
    """CombMNZ: CombSUM times the number of runs that retrieved the document."""
    runs, w = _check_runs(runs, weights, depth)
    return _combine(runs, [wi * normalise(r, norm) for r, wi in zip(runs, w)], name, mnz=True)


def linear(runs: Sequence[Run], weights: Sequence[float] | None = None, norm: str = "min-max",
           depth: int | None = None, name: str = "linear") -> Run:
    """Weighted linear interpolation of normalised scores; weights default to equal and need not sum to 1
    (``weights=[a, 1 - a]`` is the usual ``a * s1 + (1 - a) * s2``)."""
    if weights is None:
        weights = [1.0 / len(runs)] * len(runs) if runs else None
    return comb_sum(runs, norm=norm, weights=weights, depth=depth, name=name)


def fuse_runs(runs: Sequence[Run], method: str = "rrf", k: float = 60, norm: str | None = None,
              weights: Sequence[float] | None = None, depth: int | None = None, name: str | None = None) -> Run:
    """Fuse runs with a named method: rrf, combsum, combmnz or linear (aliases: comb_sum, wsum, ...)."""
    if method not in METHODS:
        raise InputError(f"unknown fusion method {method!r}", fix=f"choose one of {', '.join(sorted(METHODS))}")
    canonical = METHODS[method]
    if canonical == "rrf":
        if norm not in (None, "none"):
            raise InputError(f"rrf fuses ranks; norm={norm!r} does not apply",
                             fix="drop norm, or use method=combsum/combmnz/linear")
        return rrf(runs, k=k, weights=weights, depth=depth, name=name or "rrf")
    fn = {"comb_sum": comb_sum, "comb_mnz": comb_mnz, "linear": linear}[canonical]
    return fn(runs, norm=norm or "min-max", weights=weights, depth=depth, name=name or canonical.replace("_", ""))


class FusionStage(Stage):
    """Runs each input stage on the same input and fuses their runs (a pipeline is still a Stage)."""

    def __init__(self, stages: Sequence[Stage], method: str = "rrf", k: float = 60, norm: str | None = None,
                 weights: Sequence[float] | None = None, depth: int | None = None) -> None:
        stages = list(stages)
        if len(stages) < 2:
            raise InputError(f"fuse needs at least two stages, got {len(stages)}",
                             fix="write fuse(a, b, method=rrf)")
        for s in stages:
            if not isinstance(s, Stage):
                raise InputError(f"fuse takes stages, got {type(s).__name__}")
        if method not in METHODS:
            raise InputError(f"unknown fusion method {method!r}", fix=f"choose one of {', '.join(sorted(METHODS))}")
        if weights is not None and len(list(weights)) != len(stages):
            raise InputError(f"fuse: {len(list(weights))} weights for {len(stages)} stages",
                             fix="give one weight per fused stage")
        if METHODS[method] == "rrf" and norm not in (None, "none"):
            raise InputError(f"rrf fuses ranks; norm={norm!r} does not apply",
                             fix="drop norm, or use method=combsum/combmnz/linear")
        if norm is not None and norm not in NORMS:
            raise InputError(f"unknown normalisation {norm!r}", fix=f"choose one of {', '.join(NORMS)}")
        self.stages, self.method, self.k, self.norm = stages, method, k, norm
        self.weights = None if weights is None else [float(x) for x in weights]
        self.depth = depth
        args = [f"method={method}"]
        if METHODS[method] == "rrf" and k != 60:
            args.append(f"k={k}")
        if norm:
            args.append(f"norm={norm}")
        if self.weights:
            args.append(f"weights={self.weights}")
        if depth:
            args.append(f"depth={depth}")
        self.name = f"fuse({', '.join(repr(s) for s in stages)}, {', '.join(args)})"

    def at_least(self, k: int) -> FusionStage:
        """A copy whose inputs each retrieve at least ``k`` and whose fusion depth is at least ``k``.

        So ``fuse(bm25, dense) % 5000`` fuses 5000-deep runs instead of two 1000-deep ones. ``self``
        is never changed; it is returned as is when nothing needs to deepen.
        """
        stages = [s.at_least(k) for s in self.stages]
        depth = self.depth if self.depth is None else max(self.depth, k)
        if depth == self.depth and all(a is b for a, b in zip(stages, self.stages)):
            return self
        other = copy.copy(self)
        other.stages, other.depth = stages, depth
        return other

    def transform(self, inp: StageInput) -> Run:
        runs = [s(inp) for s in self.stages]
        return fuse_runs(runs, method=self.method, k=self.k, norm=self.norm, weights=self.weights,
                         depth=self.depth, name=METHODS[self.method].replace("_", ""))


@register("fuse", kind="combinator")
def fuse(*stages: Stage, method: str = "rrf", k: float = 60, norm: str | None = None,
         weights: Sequence[float] | None = None, depth: int | None = None) -> FusionStage:
    """``fuse(bm25, dense, method=rrf)``: a Stage fusing the runs of its input stages.

    ``k`` is the RRF constant (default 60), ``norm`` the score normalisation for combsum/combmnz/linear
    (default min-max), ``weights`` one per stage, ``depth`` how many documents of each run to fuse.
    """
    return FusionStage(stages, method=method, k=k, norm=norm, weights=weights, depth=depth)
