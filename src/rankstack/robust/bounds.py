"""Confidence half-widths for Monte-Carlo means of variables in [0, 1] (the smoothing certificate's ``eps``).

A certificate compares *all* candidates of a query at once, so the intervals must hold simultaneously:
:func:`half_widths` splits ``alpha`` over the ``m`` documents of a query (union bound, ``alpha / m``
each), and every two-sided interval spends ``delta / 2`` per side.

* ``hoeffding`` -- Hoeffding (1963): ``P(|mean - E X| >= t) <= 2 exp(-2 n t^2)``, so
  ``eps = sqrt(ln(2 / delta) / (2 n))``; ignores the variance.
* ``bernstein`` -- the empirical-Bernstein bound of Maurer & Pontil, "Empirical Bernstein Bounds and
  Sample Variance Penalization" (COLT 2009), Theorem 4: for X in [0, 1], with probability >= 1 - delta,
  ``E X <= mean + sqrt(2 V ln(2 / delta) / n) + 7 ln(2 / delta) / (3 (n - 1))`` with ``V`` the sample
  variance (``n - 1`` denominator). It is one-sided; applied to X and to 1 - X at ``delta / 2`` each it
  gives the two-sided ``eps = sqrt(2 V ln(4 / delta) / n) + 7 ln(4 / delta) / (3 (n - 1))``. Much
  narrower than Hoeffding when the smoothed score barely varies (a sigmoid near 0 or 1); infinite for
  ``n = 1``.
* ``best`` -- per document the smaller of the two, *each computed at delta / 2*: both intervals hold
  together with probability >= 1 - delta (union bound), so their intersection does, and the
  narrower one is contained in it. Never wider than the better of the two at half the budget.

Half-widths are capped at 1 (the mean of a [0, 1] variable is always within 1 of the estimate).
"""

from __future__ import annotations

import math

import numpy as np

from rankstack.errors import InputError

__all__ = ["BOUNDS", "bernstein_half_width", "check_bound", "half_widths", "hoeffding_half_width"]

BOUNDS = ("hoeffding", "bernstein", "best")


def check_bound(bound: str) -> str:
    if bound not in BOUNDS:
        raise InputError(f"unknown confidence bound {bound!r}",
                         fix="choose 'hoeffding', 'bernstein' or 'best' (the smaller of both, per document)")
    return bound


def _check_delta(delta: float) -> None:
    if not 0.0 < delta < 1.0:
        raise InputError(f"confidence level alpha must be in (0, 1), got {delta!r}")


def hoeffding_half_width(n: int, delta: float) -> float:
    """Two-sided Hoeffding half-width of the mean of ``n`` draws in [0, 1] at level ``delta``."""
    _check_delta(delta)
    return min(1.0, math.sqrt(math.log(2.0 / delta) / (2.0 * n)))


def bernstein_half_width(variance: np.ndarray | float, n: int, delta: float) -> np.ndarray:
    """Two-sided empirical-Bernstein half-width (Maurer & Pontil 2009, Thm 4, ``delta / 2`` per side).

    ``variance``: the sample variance(s) with ``n - 1`` denominator.
    """
    _check_delta(delta)
    v = np.maximum(np.asarray(variance, dtype=np.float64), 0.0)
    if n < 2:
        return np.ones_like(v)
    log = math.log(4.0 / delta)
    return np.minimum(1.0, np.sqrt(2.0 * v * log / n) + 7.0 * log / (3.0 * (n - 1)))


def half_widths(values: np.ndarray, alpha: float, bound: str = "best") -> np.ndarray:
    """Simultaneous half-widths for the row means of ``values`` (``m`` documents x ``n`` samples, in [0, 1]).

    With probability >= 1 - ``alpha`` every row's true mean lies within its half-width of the row mean.
    """
    check_bound(bound)
    _check_delta(alpha)
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise InputError(f"half_widths needs a documents x samples matrix, got shape {values.shape}")
    m, n = values.shape
    if m == 0:
        return np.zeros(0)
    if n == 0:
        raise InputError("half_widths needs at least one sample per document")
    delta = alpha / m  # union bound over the documents compared by one certificate
    if bound == "best":
        delta /= 2.0  # both bounds hold together: their minimum is valid
    var = values.var(axis=1, ddof=1) if n > 1 else np.zeros(m)
    hoeff = np.full(m, hoeffding_half_width(n, delta))
    if bound == "hoeffding":
        return hoeff
    bern = bernstein_half_width(var, n, delta)
    return bern if bound == "bernstein" else np.minimum(hoeff, bern)
