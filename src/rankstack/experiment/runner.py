"""Experiments from a TOML file: named pipelines over one collection, compared with a baseline.

Why a file: an experiment is a claim ("the hybrid beats BM25 on scifact") and the file is its
reproducible recipe: collection, split, pipelines as expressions, measures, baseline. Each pipeline's
run is cached on disk, keyed by its expression (and those of the pipelines it names), the collection
and the split, so re-running after adding one pipeline recomputes only that one.

File format::

    title = "BM25 vs dense vs hybrid"          # optional
    collection = "scifact"                      # a BEIR folder, or a name under the data root
    split = "test"
    measures = ["nDCG@10", "AP", "R@100"]
    baseline = "bm25"                           # default: the first pipeline
    depth = 1000                                # documents kept per query (default 1000)
    seed = 0                                    # for components and the randomization test
    recall_depths = [10, 20, 50, 100, 1000]     # x axis of the recall plot (optional)

    [pipelines]                                 # in order; later ones may name earlier ones
    bm25 = "bm25"
    dense = "dense(encoder='minilm')"
    hybrid = "fuse(bm25, dense, method=rrf)"
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rankstack.errors import InputError
from rankstack.pipeline.stage import Stage, StageInput
from rankstack.registry import Context
from rankstack.types import Queries, Run

__all__ = ["ExperimentSpec", "ExperimentResult", "load_experiment", "run_experiment", "run_cache_key"]

log = logging.getLogger(__name__)

KEYS = {"title", "collection", "split", "measures", "baseline", "depth", "seed", "recall_depths",
        "pipelines", "data_root", "permutations", "alpha"}
RUN_KIND = "experiment-run"
RUN_FORMAT = 1


@dataclass
class ExperimentSpec:
    """A parsed, validated experiment file."""

    collection: str
    pipelines: dict[str, str]
    measures: list[str]
    split: str = "test"
    baseline: str = ""
    depth: int = 1000
    seed: int = 0
    recall_depths: list[int] = field(default_factory=lambda: [10, 20, 50, 100, 200, 500, 1000])
    title: str = ""
    data_root: str | None = None
    permutations: int = 10000
    alpha: float = 0.05
    path: Path | None = None

    def __post_init__(self) -> None:
        if not self.baseline:
            self.baseline = next(iter(self.pipelines), "")
        if not self.title:
            self.title = self.path.stem if self.path else "experiment"


@dataclass
class ExperimentResult:
    """Runs, evaluations and the comparison an experiment produced, plus how each run was obtained."""

    spec: ExperimentSpec
    collection: Any
    queries: Queries
    qrels: Any
    runs: dict[str, Run]
    comparison: Any
    evaluations: dict[str, Any]
    seconds: dict[str, float]
    cached: dict[str, bool]
    out_dir: Path | None = None


def _load_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        return tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise InputError("experiment file does not exist", path=path) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"experiment file is not UTF-8 ({exc})", path=path) from None
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        raise InputError(f"invalid TOML: {exc}", path=path, line=line) from None


def _line_of(path: Path, key: str) -> int | None:
    """Best-effort line number of ``key =`` in the file, so errors point at it."""
    try:
        for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
            if line.strip().startswith((f"{key} ", f"{key}=", f'"{key}"')):
                return number
    except OSError:
        pass
    return None


def load_experiment(path: str | Path) -> ExperimentSpec:
    """Parse and check an experiment TOML file; every error names the file (and line when it can)."""
    path = Path(path)
    raw = _load_toml(path)

    def bad(problem: str, key: str | None = None, fix: str | None = None) -> InputError:
        return InputError(problem, path=path, line=_line_of(path, key) if key else None, fix=fix)

    unknown = sorted(set(raw) - KEYS)
    if unknown:
        hints = [difflib.get_close_matches(u, sorted(KEYS), n=1) for u in unknown]
        hint = "; ".join(f"{u!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for u, h in zip(unknown, hints))
        raise bad(f"unknown key {hint}", unknown[0], fix=f"keys are {', '.join(sorted(KEYS))}")
    if "collection" not in raw or not isinstance(raw["collection"], str):
        raise bad("'collection' (a BEIR folder or collection name) is required", fix='collection = "scifact"')
    pipelines = raw.get("pipelines")
    if not isinstance(pipelines, dict) or not pipelines:
        raise bad("a [pipelines] table with at least one 'name = \"expression\"' is required",
                  fix='[pipelines]\nbm25 = "bm25"')
    for name, expr in pipelines.items():
        if not name.isidentifier():
            raise bad(f"pipeline name {name!r} is not an identifier (later pipelines could not name it)",
                      name, fix="use letters, digits and underscores")
        if not isinstance(expr, str) or not expr.strip():
            raise bad(f"pipeline {name!r} must be an expression string", name, fix=f'{name} = "bm25 % 100"')
    measures = raw.get("measures", ["nDCG@10", "AP", "R@100"])
    if isinstance(measures, str):
        measures = [measures]
    if not isinstance(measures, list) or not measures or not all(isinstance(m, str) for m in measures):
        raise bad("'measures' must be a list of measure names", "measures", fix='measures = ["nDCG@10", "AP"]')
    from rankstack.evaluate.measures import parse_measure

    for m in measures:
        try:
            parse_measure(m)
        except InputError as exc:
            raise bad(f"measure {m!r}: {exc.problem}", "measures", fix=exc.fix) from None
    baseline = raw.get("baseline", next(iter(pipelines)))
    if baseline not in pipelines:
        raise bad(f"baseline {baseline!r} is not a pipeline", "baseline", fix=f"choose one of {list(pipelines)}")
    depth = raw.get("depth", 1000)
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise bad(f"depth must be a positive integer, got {depth!r}", "depth")
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise bad(f"seed must be an integer, got {seed!r}", "seed")
    recall = raw.get("recall_depths", [k for k in (10, 20, 50, 100, 200, 500, 1000) if k <= depth])
    if not isinstance(recall, list) or not recall or not all(isinstance(k, int) and not isinstance(k, bool)
                                                             and k >= 1 for k in recall):
        raise bad("recall_depths must be a list of positive integers", "recall_depths")
    permutations = raw.get("permutations", 10000)
    if isinstance(permutations, bool) or not isinstance(permutations, int) or permutations < 1:
        raise bad("permutations must be a positive integer", "permutations")
    alpha = raw.get("alpha", 0.05)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise bad("alpha must be in (0, 1)", "alpha")
    split = raw.get("split", "test")
    if not isinstance(split, str):
        raise bad("split must be a string", "split")
    return ExperimentSpec(collection=raw["collection"], pipelines=dict(pipelines), measures=list(measures),
                          split=split, baseline=baseline, depth=depth, seed=seed,
                          recall_depths=sorted(set(recall)), title=str(raw.get("title", "")),
                          data_root=raw.get("data_root"), permutations=permutations, alpha=float(alpha),
                          path=path)


def _referenced(expr: str, known: set[str]) -> list[str]:
    """Earlier pipeline names an expression mentions (as bare names)."""
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError:
        return []
    return sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in known})


def run_cache_key(expr: str, collection: Any, split: str, depth: int, seed: int,
                  references: dict[str, str] | None = None) -> str:
    """Cache key of one pipeline's run: expression (+ keys of named pipelines), corpus, queries, split."""
    import rankstack

    files = {}
    for name in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"):
        p = Path(collection.path) / name
        if p.is_file():
            st = p.stat()
            files[name] = [st.st_size, st.st_mtime_ns]
    raw = json.dumps({"expr": expr.strip(), "refs": references or {}, "collection": str(Path(collection.path).resolve()),
                      "files": files, "split": split, "depth": depth, "seed": seed,
                      "version": rankstack.__version__}, sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


class _NamedPipeline(Stage):
    """A named pipeline as later expressions see it: its cached run for the experiment's queries,
    or (for other inputs, e.g. used as a reranker) the real stage, built only when needed."""

    def __init__(self, name: str, expr: str, context: Context, definitions: dict[str, Stage]) -> None:
        self.name, self.expr, self.context = name, expr, context
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

    def __repr__(self) -> str:
        return self.name


def _load_cached_run(folder: Path, name: str) -> Run | None:
    from rankstack.data.trec import read_run
    from rankstack.storage import read_manifest

    if not folder.is_dir():
        return None
    try:
        read_manifest(folder, RUN_KIND, (RUN_FORMAT,))
        return read_run(folder / "run.trec", name=name)
    except InputError as exc:
        log.warning("ignoring unusable cached run %s (%s)", folder, exc)
        return None


def _save_cached_run(folder: Path, run: Run, params: dict[str, Any]) -> None:
    from rankstack.data.trec import write_run
    from rankstack.storage import atomic_directory, write_manifest

    with atomic_directory(folder) as tmp:
        write_run(run, tmp / "run.trec", tag=params.get("name"))
        write_manifest(tmp, RUN_KIND, RUN_FORMAT, params, extra={"rows": len(run)})


def run_experiment(spec: ExperimentSpec | str | Path, out_dir: str | Path | None = None,
                   cache_dir: str | Path | None = Path(".cache/rankstack"), data_root: str | Path | None = None,
                   use_cache: bool = True, report: bool = True) -> ExperimentResult:
    """Run every pipeline (or load its cached run), compare with the baseline, write the outputs.

    Writes to ``out_dir`` (when given): ``runs/<name>.trec``, ``measures.txt`` (significance-marked
    table), ``results.json``, ``per_query.csv`` and ``report.html`` (self-contained, plots inline).
    """
    from rankstack.data.beir import Collection
    from rankstack.evaluate import compare, evaluate
    from rankstack.pipeline.expression import parse_pipeline  # noqa: F401  (fail early if missing)

    if not isinstance(spec, ExperimentSpec):
        spec = load_experiment(spec)
    root = data_root or spec.data_root
    if root is not None and spec.path is not None and not Path(root).is_absolute():
        root = spec.path.parent / root
    collection = Collection(spec.collection, data_root=root)
    queries = collection.queries(spec.split)
    qrels = collection.qrels(spec.split)
    cache = Path(cache_dir) if cache_dir is not None else None
    context = Context(collection=collection, cache_dir=cache, seed=spec.seed)

    definitions: dict[str, Stage] = {}
    keys: dict[str, str] = {}
    runs: dict[str, Run] = {}
    seconds: dict[str, float] = {}
    cached: dict[str, bool] = {}
    for name, expr in spec.pipelines.items():
        refs = _referenced(expr, set(definitions))
        key = run_cache_key(expr, collection, spec.split, spec.depth, spec.seed, {r: keys[r] for r in refs})
        keys[name] = key
        named = _NamedPipeline(name, expr, context, definitions)
        folder = cache / "runs" / f"{name}-{key}" if cache is not None else None
        start = time.perf_counter()
        run = _load_cached_run(folder, name) if (folder is not None and use_cache) else None
        cached[name] = run is not None
        if run is None:
            log.info("running pipeline %s = %s", name, expr)
            run = (named.stage() % spec.depth)(queries)
            if folder is not None:
                _save_cached_run(folder, run, {"name": name, "expression": expr, "collection": collection.name,
                                               "split": spec.split, "depth": spec.depth, "key": key})
        else:
            log.info("pipeline %s: cached run %s", name, folder)
        seconds[name] = time.perf_counter() - start
        run = run.renamed(name).with_queries(queries)
        named.run = run
        runs[name] = run
        definitions[name] = named

    evaluations = {n: evaluate(r, qrels, spec.measures) for n, r in runs.items()}
    if len(runs) >= 2:
        comparison = compare(runs, qrels, spec.measures, baseline=spec.baseline, seed=spec.seed,
                             permutations=spec.permutations, alpha=spec.alpha)
    else:
        comparison = None
    result = ExperimentResult(spec=spec, collection=collection, queries=queries, qrels=qrels, runs=runs,
                              comparison=comparison, evaluations=evaluations, seconds=seconds, cached=cached)
    if out_dir is not None:
        write_outputs(result, Path(out_dir), report=report)
    return result


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
                          "run": f"runs/{n}.trec"} for n, e in spec.pipelines.items()},
        "mean": {n: ev.mean for n, ev in result.evaluations.items()},
        "comparison": result.comparison.to_dict() if result.comparison is not None else None,
    }
    atomic_write_text(out_dir / "results.json", json.dumps(payload, indent=2, allow_nan=False) + "\n")
    if report:
        from rankstack.experiment.report import write_report

        write_report(result, out_dir / "report.html")


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
    atomic_write_text(path, buf.getvalue())
