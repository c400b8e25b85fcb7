"""The experiment engine: run named pipelines (with content-keyed cached runs), evaluate, compare, write.

Why cached runs: an experiment is re-run after adding one pipeline; each pipeline's run is cached on
disk, keyed by its expression (and the keys of the pipelines it names), the *content* of the corpus,
queries and qrels (:func:`rankstack.storage.fingerprint`, never mtimes: an edited corpus is never
served a stale run), the split, the depth and the seed.

The experiment file (TOML), its typed keys and the workflow around this engine live in
:mod:`rankstack.recipes.experiment`; ``spec`` here is that recipe's ``ExperimentSpec`` (any object
with the same attributes).
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rankstack.errors import InputError, UnknownComponentError
from rankstack.pipeline.stage import Stage, StageInput
from rankstack.registry import Context
from rankstack.types import Queries, Run

__all__ = ["ExperimentResult", "run_pipelines", "save_outputs", "write_outputs", "run_cache_key", "OUT_KIND",
           "llm_costs"]

log = logging.getLogger(__name__)

RUN_KIND = "experiment-run"
RUN_FORMAT = 1
OUT_KIND = "experiment"
OUT_FORMAT = 1
METADATA_FILE = "metadata.json"  # a cached run's metadata (e.g. per-query LLM costs), beside run.trec


@dataclass
class ExperimentResult:
    """Runs, evaluations and the comparison an experiment produced, plus how each run was obtained."""

    spec: Any
    collection: Any
    queries: Queries
    qrels: Any
    runs: dict[str, Run]
    comparison: Any
    evaluations: dict[str, Any]
    seconds: dict[str, float]
    cached: dict[str, bool]
    out_dir: Path | None = None


def _referenced(expr: str, known: set[str]) -> list[str]:
    """Earlier pipeline names an expression mentions (as bare names)."""
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError:
        return []
    return sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in known})


def run_cache_key(expr: str, collection: Any, split: str, depth: int, seed: int,
                  references: dict[str, str] | None = None) -> str:
    """Cache key of one pipeline's run: expression (+ keys of named pipelines), content of corpus,
    queries and the split's qrels, split, depth, seed and the rankstack version."""
    import rankstack
    from rankstack.storage import fingerprint

    files = {}
    for name in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"):
        p = Path(collection.path) / name
        if p.is_file():
            files[name] = fingerprint(p)
    raw = json.dumps({"expr": expr.strip(), "refs": references or {}, "files": files, "split": split,
                      "depth": depth, "seed": seed, "version": rankstack.__version__}, sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


class NamedPipeline(Stage):
    """A named pipeline as later expressions see it: its cached run for the experiment's queries,
    or (for other inputs, e.g. used as a reranker) the real stage, built only when needed."""

    def __init__(self, name: str, expr: str, context: Context, definitions: dict[str, Stage], depth: int) -> None:
        self.name, self.expr, self.context, self.depth = name, expr, context, depth
        self.definitions = dict(definitions)
        self.run: Run | None = None
        self._stage: Stage | None = None

    def stage(self) -> Stage:
        if self._stage is None:
            from rankstack.pipeline.expression import parse_pipeline

            self._stage = parse_pipeline(self.expr, self.context, self.definitions)
        return self._stage

    def transform(self, inp: StageInput) -> Run:
        if self.run is not None and isinstance(inp, Queries) and set(inp.qids) <= set(self.run.query_ids):
            return self.run.restrict(inp.qids).with_queries(inp)
        return self.stage()(inp)

    def at_least(self, k: int) -> Stage:
        """Deeper than the cached run (``name % 5000`` with depth 1000): the real stage, pushed down."""
        return self if k <= self.depth else self.stage().at_least(k)

    def __repr__(self) -> str:
        return self.name


def _load_cached_run(folder: Path, name: str) -> Run | None:
    from rankstack.data.trec import read_run
    from rankstack.storage import read_manifest

    if not folder.is_dir():
        return None
    try:
        read_manifest(folder, RUN_KIND, (RUN_FORMAT,))
        run = read_run(folder / "run.trec", name=name)
        meta = folder / METADATA_FILE
        if meta.is_file():  # e.g. the LLM costs of the run's original computation
            run = run.replace(metadata=json.loads(meta.read_text(encoding="utf-8")))
        return run
    except (InputError, json.JSONDecodeError) as exc:
        log.warning("ignoring unusable cached run %s (%s)", folder, exc)
        return None


def _save_cached_run(folder: Path, run: Run, params: dict[str, Any], inputs: Iterable[Path]) -> None:
    """A cache entry rewrites itself (``overwrite=True``) but never lands in or over an input."""
    from rankstack.data.trec import write_run
    from rankstack.storage import atomic_directory, write_manifest

    with atomic_directory(folder, overwrite=True, inputs=inputs) as tmp:
        write_run(run, tmp / "run.trec", tag=params.get("name"))
        if run.metadata:
            (tmp / METADATA_FILE).write_text(json.dumps(dict(run.metadata), allow_nan=False, default=str),
                                             encoding="utf-8")
        write_manifest(tmp, RUN_KIND, RUN_FORMAT, params, extra={"rows": len(run)})


def run_pipelines(spec: Any, collection: Any, cache_dir: str | Path | None = None, use_cache: bool = True,
                  inputs: Iterable[Path] = (), executor: Any = None) -> ExperimentResult:
    """Run every pipeline of ``spec`` over ``collection`` (or load its cached run); evaluate; compare.

    Each run keeps ``spec.depth`` documents per query; ``% depth`` pushes the depth down to the
    retrievers (a depth above a retriever's default 1000 is honoured, not capped). ``executor`` (a
    rankstack.engine executor, e.g. Ray) is handed to the components through the context: dense
    corpus encoding and cross-encoder pair scoring run on it, with identical results.
    """
    from rankstack.evaluate import compare, evaluate

    inputs = tuple(inputs)
    queries = collection.queries(spec.split)
    qrels = collection.qrels(spec.split)
    cache = Path(cache_dir) if cache_dir is not None else None
    context = Context(collection=collection, cache_dir=cache, seed=spec.seed,
                      extras={"executor": executor} if executor is not None else {})

    definitions: dict[str, Stage] = {}
    keys: dict[str, str] = {}
    runs: dict[str, Run] = {}
    seconds: dict[str, float] = {}
    cached: dict[str, bool] = {}
    for name, expr in spec.pipelines.items():
        refs = _referenced(expr, set(definitions))
        key = run_cache_key(expr, collection, spec.split, spec.depth, spec.seed, {r: keys[r] for r in refs})
        keys[name] = key
        named = NamedPipeline(name, expr, context, definitions, spec.depth)
        folder = cache / "runs" / f"{name}-{key}" if cache is not None else None
        start = time.perf_counter()
        run = _load_cached_run(folder, name) if (folder is not None and use_cache) else None
        cached[name] = run is not None
        if run is None:
            log.info("running pipeline %s = %s", name, expr)
            try:
                stage = named.stage() % spec.depth
            except (InputError, UnknownComponentError) as exc:
                raise _pipeline_error(spec, name, expr, exc) from None
            run = stage(queries)
            if folder is not None:
                _save_cached_run(folder, run, {"name": name, "expression": expr, "collection": collection.name,
                                               "split": spec.split, "depth": spec.depth, "key": key}, inputs)
        else:
            log.info("pipeline %s: cached run %s", name, folder)
        seconds[name] = time.perf_counter() - start
        run = run.renamed(name).with_queries(queries)
        named.run = run
        runs[name] = run
        definitions[name] = named

    evaluations = {n: evaluate(r, qrels, spec.measures) for n, r in runs.items()}
    comparison = None
    if len(runs) >= 2:
        comparison = compare(runs, qrels, spec.measures, baseline=spec.baseline, seed=spec.seed,
                             permutations=spec.permutations, alpha=spec.alpha)
    return ExperimentResult(spec=spec, collection=collection, queries=queries, qrels=qrels, runs=runs,
                            comparison=comparison, evaluations=evaluations, seconds=seconds, cached=cached)


def _pipeline_error(spec: Any, name: str, expr: str, exc: Exception) -> InputError:
    """The error of one pipeline, naming the experiment file, the pipeline and its expression."""
    problem = exc.problem if isinstance(exc, InputError) else str(exc)
    path = getattr(spec, "path", None)
    line = getattr(spec, "line_of", lambda key: None)(name)
    return InputError(f"pipeline {name} = {expr!r}: {problem}", path=path, line=line,
                      fix=getattr(exc, "fix", None))


def save_outputs(result: ExperimentResult, out_dir: str | Path, report: bool = True,
                 inputs: Iterable[Path] = ()) -> Path:
    """Write the outputs as one crash-safe ``experiment`` folder (with a manifest).

    An earlier experiment folder at ``out_dir`` is replaced; anything else there (a non-empty folder
    that is not an experiment, an input or a folder inside one) is refused.
    """
    from rankstack.storage import atomic_directory, write_manifest

    out_dir = Path(out_dir)
    with atomic_directory(out_dir, overwrite=True, inputs=inputs) as tmp:
        write_outputs(result, tmp, report=report)
        spec = result.spec
        write_manifest(tmp, OUT_KIND, OUT_FORMAT, {"title": spec.title, "collection": result.collection.name,
                                                    "split": spec.split, "pipelines": dict(spec.pipelines)})
    result.out_dir = out_dir
    return out_dir


def write_outputs(result: ExperimentResult, out_dir: Path, report: bool = True) -> None:
    """TREC runs, measures table, JSON, per-query CSV and (optionally) the HTML report."""
    from rankstack.data.trec import write_run
    from rankstack.evaluate import format_table
    from rankstack.storage import atomic_write_text

    spec = result.spec
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, run in result.runs.items():
        write_run(run, out_dir / "runs" / f"{name}.trec", tag=name)
    if result.comparison is not None:
        table = result.comparison.to_text()
        result.comparison.to_csv(out_dir / "per_query.csv")
    else:
        table = format_table(result.evaluations)
        _single_csv(result, out_dir / "per_query.csv")
    atomic_write_text(out_dir / "measures.txt", table)
    payload = {
        "title": spec.title, "collection": result.collection.name, "collection_path": str(result.collection.path),
        "split": spec.split, "measures": spec.measures, "baseline": spec.baseline, "depth": spec.depth,
        "seed": spec.seed, "queries": len(result.evaluations[spec.baseline].queries),
        "pipelines": {n: {"expression": e, "seconds": round(result.seconds[n], 3), "cached": result.cached[n],
                          "run": f"runs/{n}.trec", **llm_costs(result.runs[n])} for n, e in spec.pipelines.items()},
        "mean": {n: ev.mean for n, ev in result.evaluations.items()},
        "comparison": result.comparison.to_dict() if result.comparison is not None else None,
    }
    atomic_write_text(out_dir / "results.json", json.dumps(payload, indent=2, allow_nan=False) + "\n")
    if report:
        from rankstack.experiment.report import write_report

        write_report(result, out_dir / "report.html")


def llm_costs(run: Run) -> dict[str, Any]:
    """``{"llm": {...}}`` for a run made by an LLM reranker (its model, strategy, total and per-query
    cost sums, and per-query means), else ``{}``. A cached run reports the costs of its original
    computation (``cached`` says so)."""
    meta = run.metadata.get("llm") if run.metadata else None
    if not meta:
        return {}
    per_query = dict(meta.get("per_query") or {})
    n = max(len(per_query), 1)
    total = dict(meta.get("total") or {})
    mean = {k: round(float(v) / n, 6) for k, v in total.items()}
    return {"llm": {"model": meta.get("model"), "strategy": meta.get("strategy"), "queries": len(per_query),
                    "total": total, "mean_per_query": mean, "per_query": per_query}}


def _single_csv(result: ExperimentResult, path: Path) -> None:
    import csv
    import io

    from rankstack.storage import atomic_write_text

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["run", "qid", "measure", "value"])
    for name, ev in result.evaluations.items():
        for m in ev.measures:
            for q in ev.queries:
                w.writerow([name, q, m, repr(ev.per_query[m][q])])
    atomic_write_text(path, buf.getvalue(), kind="per-query-csv")
