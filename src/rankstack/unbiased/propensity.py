"""Propensity estimation by result randomisation, and comparing estimates with the truth.

Swap interventions (Joachims, Swaminathan, Schnabel, "Unbiased Learning-to-Rank with Biased
Feedback", WSDM 2017, section 5): in each intervention session a rank ``k`` is drawn uniformly from
``1..n`` (``n`` = shown documents; ``k = 1`` is the unchanged control) and the document the logging
ranker put at rank 1 is swapped with the one at rank ``k``. Under the position-based model the
expected click rate on the *original top document* shown at rank ``k`` is ``p_k * E[rel(top)]``, and
at rank 1 (control) ``p_1 * E[rel(top)]``, over the same distribution of queries, so::

    p_k / p_1  =  CTR at rank k in arm k  /  CTR at rank 1 in arm 1 (over queries showing >= k results)

Restricting the control to queries with at least ``k`` results keeps the two arms' query mix equal
(queries are drawn uniformly and arms uniformly within a query's list length). The estimate costs
extra, mildly degraded sessions (the randomised top result), which is why DLA and regression EM try
to do without them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from rankstack.errors import InputError
from rankstack.unbiased.click_models import ClickModel, _check_rng
from rankstack.unbiased.clicklog import ClickLog

__all__ = ["simulate_swap_interventions", "estimate_swap_propensities", "propensity_table",
           "plot_propensities", "relative"]

log = logging.getLogger(__name__)


def relative(p: Sequence[float]) -> np.ndarray:
    """Propensities divided by the rank-1 value (what IPS needs; the scale is not identifiable)."""
    p = np.asarray(p, dtype=np.float64)
    if not len(p) or p[0] <= 0:
        raise InputError("the rank-1 propensity must be positive to express the others relative to it")
    return p / p[0]


def simulate_swap_interventions(model: ClickModel, qids: Sequence[str], docids: np.ndarray, labels: np.ndarray,
                                lengths: np.ndarray, n_sessions: int, rng: np.random.Generator) -> ClickLog:
    """Sessions with the rank-1 document swapped to a uniformly drawn rank (see module docstring).

    ``docids``/``labels``/``lengths`` are the logging ranker's lists ([Q, K], as for
    :func:`rankstack.unbiased.click_models.simulate_sessions`).
    """
    rng = _check_rng(rng)
    if isinstance(n_sessions, bool) or not isinstance(n_sessions, int) or n_sessions < 1:
        raise InputError(f"number of sessions must be a positive integer, got {n_sessions!r}")
    pick = rng.integers(0, len(qids), size=n_sessions)
    lens = np.asarray(lengths)[pick]
    arm = (rng.random(n_sessions) * lens).astype(np.int64)  # 0-based swap position, uniform in [0, len)
    d = docids[pick].copy()
    y = np.asarray(labels)[pick].copy()
    rows = np.arange(n_sessions)
    for arr in (d, y):
        top = arr[:, 0].copy()
        arr[:, 0] = arr[rows, arm]
        arr[rows, arm] = top
    mask = np.arange(docids.shape[1])[None, :] < lens[:, None]
    clicks, props = model.simulate(y, mask, rng)
    return ClickLog(np.asarray(qids)[pick], d, clicks, lens, props)


def estimate_swap_propensities(log_: ClickLog, top1: Mapping[str, str], n_ranks: int | None = None,
                               floor: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Relative propensities ``p_k / p_1`` from swap-intervention sessions.

    ``top1`` maps each qid to the logging ranker's rank-1 document (the arm of a session is where
    that document was shown). Returns ``(estimates [n_ranks], clicks on the moved document per
    arm)``; an estimate with no click is set to ``floor`` (logged as a warning) so IPS stays finite.
    """
    n_ranks = n_ranks or log_.max_length
    top = np.array([top1.get(str(q), "") for q in log_.qids.tolist()])
    missing = np.flatnonzero(top == "")
    if len(missing):
        raise InputError(f"no rank-1 document known for query {log_.qids[missing[0]]!r}",
                         fix="pass the logging ranker's top document of every query in the log")
    where = log_.docids == top[:, None]
    if not where.any(1).all():
        s = int(np.flatnonzero(~where.any(1))[0])
        raise InputError(f"session {s + 1} does not show the query's rank-1 document",
                         fix="estimate from swap-intervention sessions (simulate_swap_interventions)")
    arm = where.argmax(1)
    moved_clicks = log_.clicks[np.arange(len(log_)), arm].astype(np.float64)
    control = arm == 0
    est = np.full(n_ranks, np.nan)
    counts = np.zeros(n_ranks)
    for k in range(n_ranks):
        in_arm = arm == k
        ctrl = control & (log_.lengths > k)
        if not in_arm.any() or not ctrl.any():
            continue
        ctr_k = moved_clicks[in_arm].mean()
        ctr_1 = moved_clicks[ctrl].mean()
        counts[k] = moved_clicks[in_arm].sum()
        if ctr_1 > 0:
            est[k] = ctr_k / ctr_1
    bad = ~(est > 0)
    if bad.any():
        log.warning("swap estimate: no click at rank(s) %s; using %.g there", (np.flatnonzero(bad) + 1).tolist(),
                    floor)
        est[bad] = floor
    return est, counts


def propensity_table(true: Sequence[float], estimates: Mapping[str, Sequence[float]], digits: int = 3) -> str:
    """A Markdown table of relative propensities by rank: truth and each estimate, plus mean
    absolute error and mean absolute log-ratio error (the log ratio is what IPS weights feel)."""
    t = relative(true)
    names = list(estimates)
    head = "| rank | true | " + " | ".join(names) + " |"
    sep = "|---:|---:|" + "---:|" * len(names)
    lines = [head, sep]
    for k in range(len(t)):
        cells = [f"{np.asarray(estimates[nm], float)[k]:.{digits}f}" if k < len(estimates[nm]) else "" for nm in names]
        lines.append(f"| {k + 1} | {t[k]:.{digits}f} | " + " | ".join(cells) + " |")
    mae, mle = [], []
    for nm in names:
        e = np.asarray(estimates[nm], float)[:len(t)]
        mae.append(f"{np.mean(np.abs(e - t[:len(e)])):.{digits}f}")
        mle.append(f"{np.mean(np.abs(np.log(np.maximum(e, 1e-12) / t[:len(e)]))):.{digits}f}")
    lines.append("| MAE | | " + " | ".join(mae) + " |")
    lines.append("| mean abs log ratio | | " + " | ".join(mle) + " |")
    return "\n".join(lines)


def plot_propensities(true: Sequence[float], estimates: Mapping[str, Sequence[float] | np.ndarray], path: str | Path,
                      title: str = "relative examination propensity") -> None:
    """Save a PNG of true vs estimated relative propensities by rank (log y axis), atomically.

    ``estimates`` values may be [n_ranks] or [runs, n_ranks] (then mean and min-max band are drawn).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rankstack.storage import atomic_write_bytes

    t = relative(true)
    ranks = np.arange(1, len(t) + 1)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(ranks, t, "k-o", lw=2, label="true")
    for nm, e in estimates.items():
        e = np.atleast_2d(np.asarray(e, float))[:, :len(t)]
        mean = e.mean(0)
        line, = ax.plot(ranks[:e.shape[1]], mean, "--s", ms=4, label=nm)
        if e.shape[0] > 1:
            ax.fill_between(ranks[:e.shape[1]], e.min(0), e.max(0), color=line.get_color(), alpha=0.15)
    ax.set_yscale("log")
    ax.set_xlabel("rank")
    ax.set_ylabel("p_k / p_1")
    ax.set_xticks(ranks)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
