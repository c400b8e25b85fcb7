"""Simulated users: position-based, cascade and dependent click models, seeded and vectorised.

Every model clicks a document only if the user examines it and finds it attractive; attractiveness
depends only on the true relevance grade ``y`` (the standard ULTR simulation, e.g. Ai et al.,
"Unbiased Learning to Rank with Unbiased Propensity Estimation", SIGIR 2018, and the ULTRA toolkit,
Tran et al., CIKM 2021)::

    P(attractive | y) = eps + (1 - eps) * (2^y - 1) / (2^ymax - 1)        (eps = 0.1 click noise)

The models differ in how examination happens:

* :class:`PositionBasedModel` (PBM; Richardson et al. 2007, Craswell et al. 2008): rank ``k`` is
  examined with probability ``theta_k = base_k ** eta``, independently of everything else. ``base``
  is the eye-tracking-derived vector used by Ai et al. 2018 (from Joachims et al. 2005)
  ``[0.68, 0.61, 0.48, 0.34, 0.28, 0.20, 0.11, 0.10, 0.08, 0.06]``; beyond rank 10 it continues as
  ``base_10 * 10 / k`` (continuous at rank 10 and decaying like ``1/k``, the inverse-rank shape
  Joachims et al. 2017 used), so lists longer than 10 remain well defined. ``eta`` sets the
  severity of the bias (eta = 0: no bias).
* :class:`CascadeModel` (Craswell et al., "An experimental comparison of click position-bias
  models", WSDM 2008): the user scans from the top and stops after the first click.
* :class:`DependentClickModel` (DCM; Guo, Liu, Wang, "Efficient multiple-click models in web
  search", WSDM 2009): like the cascade, but after a click at rank ``k`` the user goes on with
  probability ``lambda_k`` (``continuation``); with no click the user always goes on.

``simulate(labels, mask, rng)`` returns clicks and the per-session examination propensities the
simulator knows: for PBM the examination probability of the rank; for cascade/DCM the probability of
examining rank ``k`` *given the clicks above it* (1 or 0 for the cascade, a product of
``lambda``s for DCM). Every random draw comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from rankstack.errors import InputError
from rankstack.registry import build, names, register
from rankstack.unbiased.clicklog import ClickLog

__all__ = ["ClickModel", "PositionBasedModel", "CascadeModel", "DependentClickModel", "PBM_BASE",
           "pbm_examination", "make_click_model", "click_model_names", "simulate_sessions", "topk_lists"]

log = logging.getLogger(__name__)

#: Examination probabilities of ranks 1..10 (Joachims et al. 2005 eye tracking, as used by Ai et al. 2018).
PBM_BASE = (0.68, 0.61, 0.48, 0.34, 0.28, 0.20, 0.11, 0.10, 0.08, 0.06)


def pbm_examination(n: int, eta: float = 1.0, base: Sequence[float] = PBM_BASE) -> np.ndarray:
    """``theta_k = base_k ** eta`` for ranks 1..n; ranks beyond ``len(base)`` use ``base[-1] * len/k``."""
    if n < 0:
        raise InputError(f"number of ranks must be >= 0, got {n}")
    b = np.asarray(base, dtype=np.float64)
    m = len(b)
    ranks = np.arange(1, n + 1)
    vals = np.where(ranks <= m, b[np.minimum(ranks, m) - 1], b[-1] * m / ranks)
    return vals ** float(eta)


def _check_rng(rng: Any) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise InputError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}",
                         fix="pass numpy.random.default_rng(seed)")
    return rng


class ClickModel:
    """Common part: attractiveness from relevance grades, input checks, and a spec for manifests."""

    name = "base"

    def __init__(self, eps: float = 0.1, max_grade: int = 2) -> None:
        if not 0.0 <= eps <= 1.0:
            raise InputError(f"eps must be in [0, 1], got {eps!r}", fix="eps is the click noise, e.g. 0.1")
        if isinstance(max_grade, bool) or not isinstance(max_grade, int) or max_grade < 1:
            raise InputError(f"max_grade must be an integer >= 1, got {max_grade!r}",
                             fix="MQ2008 grades are 0..2: max_grade=2")
        self.eps = float(eps)
        self.max_grade = max_grade

    def attractiveness(self, labels: np.ndarray) -> np.ndarray:
        """``eps + (1 - eps)(2^y - 1)/(2^ymax - 1)``; grades are clipped to [0, max_grade]."""
        y = np.clip(np.asarray(labels, dtype=np.float64), 0, self.max_grade)
        return self.eps + (1.0 - self.eps) * (2.0 ** y - 1.0) / (2.0 ** self.max_grade - 1.0)

    def params(self) -> dict[str, Any]:
        return {"eps": self.eps, "max_grade": self.max_grade}

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "args": self.params()}

    def _prepare(self, labels: np.ndarray, mask: np.ndarray | None, rng: Any):
        labels = np.asarray(labels)
        if labels.ndim != 2:
            raise InputError(f"labels must be [sessions, ranks], got shape {labels.shape}")
        mask = np.ones(labels.shape, bool) if mask is None else np.asarray(mask, bool)
        if mask.shape != labels.shape:
            raise InputError(f"mask shape {mask.shape} differs from labels shape {labels.shape}")
        return labels, mask, _check_rng(rng)

    def simulate(self, labels: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Clicks int8 [S, K] and examination propensities float [S, K] (0 on padding)."""
        raise NotImplementedError

    def examination(self, n: int) -> np.ndarray | None:
        """Position-only examination probabilities of ranks 1..n, or None if they depend on clicks."""
        return None


@register("pbm", kind="click_model")
class PositionBasedModel(ClickModel):
    """PBM: examination ``base_k ** eta`` independent of the documents (see module docstring)."""

    name = "pbm"

    def __init__(self, eta: float = 1.0, eps: float = 0.1, max_grade: int = 2,
                 base: Sequence[float] = PBM_BASE) -> None:
        super().__init__(eps, max_grade)
        if not (isinstance(eta, (int, float)) and eta >= 0):
            raise InputError(f"eta must be a number >= 0, got {eta!r}", fix="eta 1 or 2 are the usual severities")
        b = np.asarray(base, dtype=np.float64)
        if b.ndim != 1 or not len(b) or np.any(b <= 0) or np.any(b > 1):
            raise InputError(f"base examination probabilities must lie in (0, 1], got {list(base)!r}")
        self.eta = float(eta)
        self.base = tuple(float(x) for x in b)

    def params(self) -> dict[str, Any]:
        return {"eta": self.eta, **super().params(), "base": list(self.base)}

    def examination(self, n: int) -> np.ndarray:
        return pbm_examination(n, self.eta, self.base)

    def simulate(self, labels, mask, rng):
        labels, mask, rng = self._prepare(labels, mask, rng)
        theta = np.broadcast_to(self.examination(labels.shape[1]), labels.shape)
        examined = rng.random(labels.shape) < theta
        attractive = rng.random(labels.shape) < self.attractiveness(labels)
        clicks = (examined & attractive & mask).astype(np.int8)
        return clicks, np.where(mask, theta, 0.0)


@register("cascade", kind="click_model")
class CascadeModel(ClickModel):
    """Cascade model: scan top-down, click an attractive document, stop after the first click."""

    name = "cascade"

    def simulate(self, labels, mask, rng):
        labels, mask, rng = self._prepare(labels, mask, rng)
        s, k = labels.shape
        attractive = rng.random(labels.shape) < self.attractiveness(labels)
        clicks = np.zeros((s, k), np.int8)
        props = np.zeros((s, k))
        active = np.ones(s, bool)
        for j in range(k):
            props[:, j] = np.where(mask[:, j], active, 0.0)
            c = active & attractive[:, j] & mask[:, j]
            clicks[:, j] = c
            active &= ~c
        return clicks, props


@register("dcm", kind="click_model")
class DependentClickModel(ClickModel):
    """DCM: cascade with continuation probability ``lambda_k`` after a click at rank ``k``.

    ``continuation`` is one number for every rank or a sequence (the last value repeats).
    """

    name = "dcm"

    def __init__(self, continuation: float | Sequence[float] = 0.5, eps: float = 0.1, max_grade: int = 2) -> None:
        super().__init__(eps, max_grade)
        lam = np.atleast_1d(np.asarray(continuation, dtype=np.float64))
        if lam.ndim != 1 or not len(lam) or np.any(lam < 0) or np.any(lam > 1):
            raise InputError(f"continuation probabilities must lie in [0, 1], got {continuation!r}")
        self.continuation = tuple(float(x) for x in lam)

    def params(self) -> dict[str, Any]:
        return {"continuation": list(self.continuation), **super().params()}

    def lambdas(self, n: int) -> np.ndarray:
        lam = np.asarray(self.continuation)
        return lam[np.minimum(np.arange(n), len(lam) - 1)]

    def simulate(self, labels, mask, rng):
        labels, mask, rng = self._prepare(labels, mask, rng)
        s, k = labels.shape
        lam = self.lambdas(k)
        attractive = rng.random(labels.shape) < self.attractiveness(labels)
        go_on = rng.random(labels.shape) < lam[None, :]
        clicks = np.zeros((s, k), np.int8)
        props = np.zeros((s, k))
        active = np.ones(s, bool)
        p_exam = np.ones(s)
        for j in range(k):
            props[:, j] = np.where(mask[:, j], p_exam, 0.0)
            c = active & attractive[:, j] & mask[:, j]
            clicks[:, j] = c
            active &= ~c | go_on[:, j]
            p_exam = np.where(c, p_exam * lam[j], p_exam)
        return clicks, props


def click_model_names() -> list[str]:
    """Registered click models (kind ``click_model``): ``cascade``, ``dcm``, ``pbm``."""
    return names("click_model")


def make_click_model(name: str, **params: Any) -> ClickModel:
    """Build a registered click model by name (``pbm``, ``cascade``, ``dcm``) with its parameters.

    Unknown names raise the registry's UnknownComponentError (with did-you-mean); unknown
    parameters an InputError naming the accepted ones.
    """
    return build({"name": name, "args": params}, kind="click_model")


def topk_lists(qids: np.ndarray, docids: np.ndarray, labels: np.ndarray, scores: np.ndarray, k: int
               ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Each query's top-``k`` by ``scores`` (ties by docid descending, trec_eval's order).

    Returns ``(query ids, docids [Q, k] str, labels [Q, k], lengths [Q])``; rows are grouped by qid.
    """
    from rankstack.types import Run

    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError(f"top-k must be a positive integer, got {k!r}")
    label_of = {(q, d): int(y) for q, d, y in zip(qids.tolist(), docids.tolist(), np.asarray(labels).tolist())}
    run = Run(qids, docids, scores).top_k(k)
    groups = list(run.groups())
    width = max((len(d) for d in docids.tolist()), default=1)
    out_d = np.full((len(groups), k), "", dtype=f"<U{width}")
    out_y = np.zeros((len(groups), k), dtype=np.int64)
    lengths = np.zeros(len(groups), dtype=np.int64)
    names = []
    for i, (q, d, _) in enumerate(groups):
        names.append(q)
        n = len(d)
        lengths[i] = n
        out_d[i, :n] = d
        out_y[i, :n] = [label_of[(q, x)] for x in d.tolist()]
    return names, out_d, out_y, lengths


def simulate_sessions(model: ClickModel, qids: Sequence[str], docids: np.ndarray, labels: np.ndarray,
                      lengths: np.ndarray, n_sessions: int, rng: np.random.Generator,
                      log_propensities: bool = True) -> ClickLog:
    """``n_sessions`` sessions: a query drawn uniformly from ``qids``, its list shown, clicks simulated.

    ``docids``/``labels`` are the shown lists [Q, K] (e.g. from :func:`topk_lists`), ``lengths`` how
    many entries of each row are real. The log stores the simulator's propensities unless
    ``log_propensities`` is False.
    """
    rng = _check_rng(rng)
    if isinstance(n_sessions, bool) or not isinstance(n_sessions, int) or n_sessions < 1:
        raise InputError(f"number of sessions must be a positive integer, got {n_sessions!r}")
    if not len(qids):
        raise InputError("no queries to simulate sessions for")
    pick = rng.integers(0, len(qids), size=n_sessions)
    lens = np.asarray(lengths)[pick]
    mask = np.arange(docids.shape[1])[None, :] < lens[:, None]
    clicks, props = model.simulate(np.asarray(labels)[pick], mask, rng)
    log.info("simulated %d %s sessions over %d queries: %.3f clicks per session", n_sessions, model.name,
             len(qids), clicks.sum() / n_sessions)
    return ClickLog(np.asarray(qids)[pick], docids[pick], clicks, lens, props if log_propensities else None)
