"""Per-group score and feature normalisation: min-max and z-score, one rule for a constant group.

Why one module: fusion (scores per query of each run), reranker interpolation (reranker and
first-stage scores per query) and LTR (each feature per query) all normalise "within a query", and
three copies had drifted apart on a constant list (fusion mapped it to 1, the others to 0).

The rule, for every caller:

* ``minmax``: ``(x - min) / (max - min)`` within the group, so the group spans [0, 1]
  (Lee, "Analyses of multiple evidence combination", SIGIR 1997; LETOR's QueryLevelNorm).
* ``zscore``: ``(x - mean) / std`` with the population standard deviation (Montague & Aslam,
  "Relevance score normalization for metasearch", CIKM 2001).
* **A constant group (max == min, compared exactly) maps to 0 under both.** It carries no preference
  between its items, and 0 is what LETOR 4.0's QueryLevelNorm files hold for a feature constant
  within a query (all 1,515 such cases in MQ2008 S1), and the z-score mean. The test is exact
  equality rather than ``std < eps`` so rounding in the mean of identical values can never blow
  noise up to +-1.
* ``none``: values unchanged (a float64 copy).

Published figures do not move: the fusion benchmarks use z-score, reranker interpolation of a
constant list only shifts every item of that query equally, and the LTR figures use no
normalisation. Low layer: imports only numpy and rankstack.errors.
"""

from __future__ import annotations

import numpy as np

from rankstack.errors import InputError

__all__ = ["METHODS", "canonical", "group_offsets", "normalise", "minmax", "zscore"]

#: accepted spellings -> canonical name
METHODS = {"minmax": "minmax", "min-max": "minmax", "zscore": "zscore", "z-score": "zscore", "none": "none"}


def canonical(method: str) -> str:
    """``"min-max"``/``"minmax"`` -> ``"minmax"``, ``"z-score"``/``"zscore"`` -> ``"zscore"``, ``"none"``."""
    if not isinstance(method, str) or method not in METHODS:
        raise InputError(f"unknown normalisation {method!r}", fix="choose minmax, zscore or none")
    return METHODS[method]


def group_offsets(keys: np.ndarray) -> np.ndarray:
    """Boundaries ``[0, ..., n]`` of runs of equal ``keys`` (rows of a group must be contiguous)."""
    keys = np.asarray(keys)
    if len(keys) == 0:
        return np.zeros(1, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return np.r_[starts, len(keys)].astype(np.int64)


def _check_offsets(offsets: np.ndarray | None, n: int) -> np.ndarray:
    if offsets is None:
        return np.array([0, n], dtype=np.int64)
    o = np.asarray(offsets, dtype=np.int64).reshape(-1)
    if len(o) < 2 or o[0] != 0 or o[-1] != n or np.any(np.diff(o) <= 0):
        raise InputError(f"group offsets must rise strictly from 0 to {n}, got {o[:5].tolist()}...",
                         fix="pass boundaries [0, end of group 1, ..., number of rows]")
    return o


def normalise(values: np.ndarray, offsets: np.ndarray | None = None, method: str = "minmax") -> np.ndarray:
    """``values`` ([n] or [n, f]; columns independently) normalised within each group, as float64.

    ``offsets``: group boundaries ``[0, ..., n]`` (see :func:`group_offsets`); None = one group.
    """
    method = canonical(method)
    x = np.asarray(values, dtype=np.float64)
    if x.ndim not in (1, 2):
        raise InputError(f"normalise takes a [n] or [n, f] array, got shape {x.shape}")
    if method == "none" or len(x) == 0:
        return x.copy()
    o = _check_offsets(offsets, len(x))
    starts, sizes = o[:-1], np.diff(o)
    group = np.repeat(np.arange(len(sizes)), sizes)
    lo = np.minimum.reduceat(x, starts, axis=0)
    hi = np.maximum.reduceat(x, starts, axis=0)
    constant = (hi == lo)[group]
    if method == "minmax":
        span = np.where(hi > lo, hi - lo, 1.0)
        out = (x - lo[group]) / span[group]
    elif offsets is None:  # one group: NumPy's pairwise mean/std (what the reranker always used)
        centred = x - x.mean(axis=0, keepdims=True)
        std = np.sqrt(np.mean(centred * centred, axis=0, keepdims=True))
        out = centred / np.where(std > 0, std, 1.0)
    else:
        shape = (-1,) + (1,) * (x.ndim - 1)
        mean = np.add.reduceat(x, starts, axis=0) / sizes.reshape(shape)
        centred = x - mean[group]
        std = np.sqrt(np.add.reduceat(centred * centred, starts, axis=0) / sizes.reshape(shape))
        out = centred / np.where(std > 0, std, 1.0)[group]
    out[constant] = 0.0
    return out


def minmax(values: np.ndarray, offsets: np.ndarray | None = None) -> np.ndarray:
    """Per-group min-max to [0, 1]; a constant group is 0."""
    return normalise(values, offsets, "minmax")


def zscore(values: np.ndarray, offsets: np.ndarray | None = None) -> np.ndarray:
    """Per-group z-score (population std); a constant group is 0."""
    return normalise(values, offsets, "zscore")
