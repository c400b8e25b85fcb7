"""``compare``: several runs against a baseline, with paired significance tests and per-query deltas.

Why these tests: the paired t-test and the paired randomization (sign-flip permutation) test are
the two that IR evaluation studies recommend and that agree in practice (Smucker, Allan, Carterette,
"A Comparison of Statistical Significance Tests for Information Retrieval Evaluation", CIKM 2007).
Why Holm-Bonferroni: comparing many runs to one baseline inflates false positives; Holm controls the
family-wise error rate and is uniformly more powerful than Bonferroni (Holm, "A Simple Sequentially
Rejective Multiple Test Procedure", 1979). The family is the non-baseline runs of one measure.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.errors import InputError
from rankstack.evaluate.core import Evaluation, evaluate
from rankstack.evaluate.measures import Measure, parse_measure
from rankstack.storage import atomic_write_text
from rankstack.types import Qrels, Run

__all__ = ["compare", "Comparison", "RunStats", "format_table", "holm", "paired_t_test",
           "randomization_test"]

T_MARK = "\u2020"      # dagger: Holm-corrected paired t-test p < alpha
PERM_MARK = "\u2021"   # double dagger: Holm-corrected randomization test p < alpha


# statistics -------------------------------------------------------------------------------
def paired_t_test(values: np.ndarray, baseline: np.ndarray) -> float:
    """Two-sided paired t-test p (scipy.stats.ttest_rel); 1.0 when every delta is exactly 0."""
    from scipy import stats

    deltas = np.asarray(values, float) - np.asarray(baseline, float)
    if not np.any(deltas):
        return 1.0
    if len(deltas) < 2:
        return float("nan")
    return float(stats.ttest_rel(values, baseline).pvalue)


def randomization_test(deltas: np.ndarray, permutations: int = 10000,
                       rng: np.random.Generator | int = 0, batch: int = 1000) -> float:
    """Two-sided paired randomization test: random sign flips of the per-query deltas.

    p = (1 + #{|mean of flipped deltas| >= |observed mean|}) / (1 + permutations), the unbiased
    Monte-Carlo estimate (never 0). Identical runs (all deltas 0) give p = 1.
    """
    if isinstance(permutations, bool) or not isinstance(permutations, int) or permutations < 1:
        raise InputError(f"permutations must be a positive integer, got {permutations!r}")
    deltas = np.asarray(deltas, dtype=np.float64)
    if not np.any(deltas):
        return 1.0
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    observed = abs(deltas.mean())
    tol = 1e-12 * max(1.0, observed)
    hits, done = 0, 0
    while done < permutations:
        n = min(batch, permutations - done)
        signs = gen.integers(0, 2, size=(n, len(deltas)), dtype=np.int8) * 2 - 1
        hits += int(np.count_nonzero(np.abs(signs @ deltas) / len(deltas) >= observed - tol))
        done += n
    return (hits + 1) / (permutations + 1)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order (NaN stays NaN and is not counted)."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(len(p), np.nan)
    idx = np.flatnonzero(~np.isnan(p))
    m = len(idx)
    if m == 0:
        return out.tolist()
    order = idx[np.argsort(p[idx], kind="stable")]
    running = 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[j]))
        out[j] = running
    return out.tolist()


# result -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunStats:
    """One run on one measure, against the baseline on the same queries."""

    mean: float
    delta: float
    t_p: float
    t_p_holm: float
    perm_p: float
    perm_p_holm: float
    wins: int
    ties: int
    losses: int
    per_query: dict[str, float]
    per_query_delta: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {k: _clean(getattr(self, k)) for k in self.__dataclass_fields__}


def _clean(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    return x


@dataclass(frozen=True)
class Comparison:
    """Result of ``compare``: ``stats[measure][run]`` for every run, the baseline included."""

    measures: list[str]
    runs: list[str]
    baseline: str
    queries: list[str]
    stats: dict[str, dict[str, RunStats]]
    alpha: float
    permutations: int
    missing: str

    def to_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "runs": list(self.runs), "measures": list(self.measures),
                "queries": list(self.queries), "alpha": self.alpha, "permutations": self.permutations,
                "missing": self.missing, "correction": "holm", "t_test": "scipy.stats.ttest_rel",
                "randomization_test": "paired sign-flip",
                "stats": {m: {r: s.to_dict() for r, s in by_run.items()} for m, by_run in self.stats.items()}}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def to_text(self, digits: int = 4) -> str:
        """Aligned table: mean per measure with significance marks, then wins/ties/losses."""
        header = ["run"]
        for m in self.measures:
            header += [m, f"W/T/L {m}"]
        rows = []
        for r in self.runs:
            row = [r + (" (baseline)" if r == self.baseline else "")]
            for m in self.measures:
                s = self.stats[m][r]
                marks = ""
                if r != self.baseline:
                    marks += T_MARK if s.t_p_holm < self.alpha else ""
                    marks += PERM_MARK if s.perm_p_holm < self.alpha else ""
                row.append(_format_value(m, s.mean, digits) + marks)
                row.append("-" if r == self.baseline else f"{s.wins}/{s.ties}/{s.losses}")
            rows.append(row)
        table = _align(header, rows, first_left=True)
        legend = (f"{T_MARK} paired t-test, {PERM_MARK} randomization test ({self.permutations} "
                  f"sign flips): Holm-corrected p < {self.alpha} vs {self.baseline!r}; "
                  f"{len(self.queries)} queries; W/T/L = per-query wins/ties/losses vs the baseline")
        return table + "\n" + legend + "\n"

    def to_csv(self, path: str | Path) -> None:
        """Per-query rows (run, qid, measure, value, baseline_value, delta), written atomically."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["run", "qid", "measure", "value", "baseline_value", "delta"])
        for m in self.measures:
            base = self.stats[m][self.baseline].per_query
            for r in self.runs:
                s = self.stats[m][r]
                for q in self.queries:
                    w.writerow([r, q, m, repr(s.per_query[q]), repr(base[q]), repr(s.per_query_delta[q])])
        atomic_write_text(path, buf.getvalue(), kind="per-query-csv")


def _format_value(measure: str, value: float, digits: int) -> str:
    """Counts (NumRet, ...) print as integers, everything else with ``digits`` decimals."""
    try:
        is_count = parse_measure(measure).is_count
    except InputError:
        is_count = False
    if is_count and float(value).is_integer():
        return str(int(value))
    return f"{value:.{digits}f}"


def _align(header: list[str], rows: list[list[str]], first_left: bool = True) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]

    def fmt(cells: list[str]) -> str:
        out = []
        for i, (c, w) in enumerate(zip(cells, widths)):
            out.append(c.ljust(w) if (i == 0 and first_left) else c.rjust(w))
        return "  ".join(out).rstrip()

    lines = [fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows]
    return "\n".join(lines)


def format_table(evaluations: Mapping[str, Evaluation], digits: int = 4) -> str:
    """A plain table of summary values: one row per run, one column per measure (CLI output)."""
    if not evaluations:
        raise InputError("no evaluations to tabulate", fix="evaluate at least one run")
    measures: list[str] = []
    for ev in evaluations.values():
        measures += [m for m in ev.measures if m not in measures]
    rows = []
    for name, ev in evaluations.items():
        cells = [str(name)]
        for m in measures:
            cells.append(_format_value(m, ev.mean[m], digits) if m in ev.mean else "-")
        cells.append(str(len(ev.queries)))
        rows.append(cells)
    return _align(["run", *measures, "queries"], rows) + "\n"


# compare ----------------------------------------------------------------------------------
def _named_runs(runs: Sequence[Run] | Mapping[str, Run]) -> dict[str, Run]:
    if isinstance(runs, Mapping):
        named = {str(k): v for k, v in runs.items()}
    else:
        named = {}
        for r in runs:
            if not isinstance(r, Run):
                raise InputError(f"expected Run objects, got {type(r).__name__}")
            if r.name in named:
                raise InputError(f"two runs are named {r.name!r}",
                                 fix="pass a dict {name: run} or rename with run.renamed('...')")
            named[r.name] = r
    for k, r in named.items():
        if not isinstance(r, Run):
            raise InputError(f"run {k!r} is a {type(r).__name__}, not a Run")
    if len(named) < 2:
        raise InputError(f"compare needs at least two runs, got {len(named)}",
                         fix="pass a baseline and one or more runs to compare with it")
    return named


def compare(runs: Sequence[Run] | Mapping[str, Run], qrels: Qrels, measures: str | Sequence[str | Measure],
            baseline: str | int = 0, missing: str = "skip", permutations: int = 10000, seed: int = 0,
            alpha: float = 0.05) -> Comparison:
    """Compare runs with a baseline on the queries the baseline is evaluated on.

    The baseline is evaluated with ``missing``; every other run is evaluated on exactly those queries,
    a query it did not answer scoring 0 (trec_eval -c), so all tests are paired over the same set.
    Per measure and run: mean, delta, paired t-test p, randomization-test p (``permutations`` sign
    flips, ``numpy.random.default_rng(seed)``), both Holm-corrected across the non-baseline runs,
    and wins/ties/losses. Runs given as a list are named by ``Run.name``.
    """
    named = _named_runs(runs)
    names = list(named)
    if isinstance(baseline, bool) or not isinstance(baseline, (int, str)):
        raise InputError(f"baseline must be a run name or index, got {baseline!r}")
    if isinstance(baseline, int):
        if not -len(names) <= baseline < len(names):
            raise InputError(f"baseline index {baseline} is out of range for {len(names)} runs",
                             fix=f"use 0..{len(names) - 1} or a name among {names}")
        base_name = names[baseline]
    else:
        if baseline not in named:
            raise InputError(f"baseline {baseline!r} is not among the runs {names}",
                             fix="pass the name of one of the runs, or its index")
        base_name = baseline
    if not (0 < alpha < 1):
        raise InputError(f"alpha must be in (0, 1), got {alpha!r}")
    if isinstance(permutations, bool) or not isinstance(permutations, int) or permutations < 1:
        raise InputError(f"permutations must be a positive integer, got {permutations!r}")

    base_ev = evaluate(named[base_name], qrels, measures, missing=missing)
    queries = base_ev.queries
    restricted = qrels.restrict(queries)
    evs: dict[str, Evaluation] = {}
    for name in names:
        if name == base_name:
            evs[name] = base_ev
            continue
        run = named[name]
        if not set(run.query_ids) & set(queries):
            raise InputError(f"run {name!r} answers none of the {len(queries)} baseline queries",
                             fix="compare runs over the same queries and qrels")
        evs[name] = evaluate(run, restricted, measures, missing="zero")

    rng = np.random.default_rng(seed)
    stats: dict[str, dict[str, RunStats]] = {}
    for m in base_ev.measures:
        base_vals = np.array([base_ev.per_query[m][q] for q in queries])
        raw: dict[str, dict[str, Any]] = {}
        for name in names:
            vals = np.array([evs[name].per_query[m][q] for q in queries])
            deltas = vals - base_vals
            is_base = name == base_name
            raw[name] = {
                "vals": vals, "deltas": deltas,
                "t_p": 1.0 if is_base else paired_t_test(vals, base_vals),
                "perm_p": 1.0 if is_base else randomization_test(deltas, permutations, rng),
            }
        others = [n for n in names if n != base_name]
        t_holm = dict(zip(others, holm([raw[n]["t_p"] for n in others])))
        p_holm = dict(zip(others, holm([raw[n]["perm_p"] for n in others])))
        stats[m] = {}
        for name in names:
            d = raw[name]
            deltas = d["deltas"]
            stats[m][name] = RunStats(
                mean=evs[name].mean[m], delta=evs[name].mean[m] - base_ev.mean[m],
                t_p=d["t_p"], t_p_holm=t_holm.get(name, 1.0),
                perm_p=d["perm_p"], perm_p_holm=p_holm.get(name, 1.0),
                wins=int(np.sum(deltas > 0)), ties=int(np.sum(deltas == 0)), losses=int(np.sum(deltas < 0)),
                per_query=dict(zip(queries, d["vals"].tolist())),
                per_query_delta=dict(zip(queries, deltas.tolist())))
    return Comparison(list(base_ev.measures), names, base_name, list(queries), stats, alpha,
                      permutations, missing)
