"""``evaluate(run, qrels, measures)``: the one entry point every part of rankstack measures through.

Why one function: the trainer's validation, the CLI, benchmarks and ``compare`` must report the same
number for the same run; the semantics (trec_eval's) are documented in ``rankstack.evaluate.measures``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rankstack.errors import InputError
from rankstack.evaluate.measures import Measure, compute, parse_measures
from rankstack.types import Qrels, Run

__all__ = ["Evaluation", "evaluate", "MISSING_MODES"]

MISSING_MODES = ("skip", "zero")


@dataclass(frozen=True)
class Evaluation:
    """Per-query and summary values of a run.

    ``per_query[measure][qid]`` and ``mean[measure]`` are keyed by the measure names exactly as the
    caller gave them. ``mean`` is the arithmetic mean over ``queries``, except for the counts
    ``NumRet``/``NumRel``/``NumRelRet`` whose summary is their sum (as trec_eval and ir_measures).
    """

    measures: list[str]
    per_query: dict[str, dict[str, float]]
    mean: dict[str, float]
    queries: list[str]
    missing: str
    run_name: str = "run"

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run_name, "measures": list(self.measures), "missing": self.missing,
                "queries": list(self.queries), "mean": dict(self.mean),
                "per_query": {m: dict(v) for m, v in self.per_query.items()}}

    def __getitem__(self, measure: str) -> float:
        try:
            return self.mean[measure]
        except KeyError:
            raise InputError(f"measure {measure!r} was not evaluated",
                             fix=f"choose one of {', '.join(self.measures)}") from None


def _check_missing(missing: str) -> None:
    if missing not in MISSING_MODES:
        raise InputError(f"missing={missing!r} is not a known mode",
                         fix="use 'skip' (queries in run and qrels, trec_eval default) or 'zero' "
                             "(trec_eval -c: qrels queries absent from the run score 0)")


def evaluated_queries(run: Run, qrels: Qrels, missing: str = "skip") -> list[str]:
    """The queries a run is evaluated on (sorted); raises when the run and qrels cannot match."""
    _check_missing(missing)
    if not isinstance(run, Run):
        raise InputError(f"expected a Run, got {type(run).__name__}", fix="read a run with rankstack.read_run")
    if not isinstance(qrels, Qrels):
        raise InputError(f"expected Qrels, got {type(qrels).__name__}", fix="read qrels with rankstack.read_qrels")
    if len(run) == 0:
        raise InputError(f"run {run.name!r} is empty", fix="check the run file or the retriever's output")
    if len(qrels) == 0:
        raise InputError(f"qrels {qrels.name!r} hold no judgements", fix="check the qrels file and split")
    run_q, qrels_q = set(run.query_ids), set(qrels.query_ids)
    common = run_q & qrels_q
    if not common:
        raise InputError(
            f"run {run.name!r} and qrels {qrels.name!r} have no query in common (run ids e.g. "
            f"{sorted(run_q)[:3]}, qrels ids e.g. {sorted(qrels_q)[:3]})",
            fix="evaluate the run against the qrels of the same collection and split")
    return sorted(common if missing == "skip" else qrels_q)


def evaluate(run: Run, qrels: Qrels, measures: str | Sequence[str | Measure],
             missing: str = "skip") -> Evaluation:
    """Evaluate ``run`` against ``qrels`` with trec_eval semantics.

    ``measures``: one name or a list, ir_measures syntax (``nDCG@10``, ``AP``, ``P(rel=2)@5``).
    ``missing``: ``"skip"`` evaluates the queries in both run and qrels (trec_eval default);
    ``"zero"`` is trec_eval ``-c``: qrels queries the run lacks score 0 and enter the mean.
    """
    parsed = parse_measures(measures)
    queries = evaluated_queries(run, qrels, missing)
    values = compute(run, qrels, queries, [m for _, m in parsed])
    per_query: dict[str, dict[str, float]] = {}
    mean: dict[str, float] = {}
    for name, m in parsed:
        vals = values[m]
        per_query[name] = dict(zip(queries, vals.tolist()))
        mean[name] = float(vals.sum() if m.is_count else vals.mean())
    return Evaluation([n for n, _ in parsed], per_query, mean, queries, missing, run.name)
