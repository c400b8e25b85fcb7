"""Experiments from a TOML file: named pipelines over one collection, compared with a baseline.

Why a file: an experiment is a claim ("the hybrid beats BM25 on scifact") and the file is its
reproducible recipe. Its keys are the fields of :class:`ExperimentSpec` (typed: ``data_root = 5`` is
one clear error naming the file, the key and its line); the command's options are the fields of
:class:`ExperimentConfig`. The engine (cached runs, evaluation, outputs) is
:mod:`rankstack.experiment.runner`.

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

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rankstack.errors import InputError
from rankstack.recipes.config import option
from rankstack.recipes.index import EXECUTION_HELP, RAY_ADDRESS_HELP, WORKERS_HELP, executor_for

__all__ = ["ExperimentSpec", "ExperimentConfig", "ExperimentOutcome", "load_experiment", "run_experiment", "run"]

DEFAULT_RECALL = (10, 20, 50, 100, 200, 500, 1000)


def _bad(problem: str, key: str | None = None, fix: str | None = None) -> InputError:
    """A spec error; its problem text starts with the key it is about (the loader finds the line)."""
    return InputError(problem, fix=fix)


def _key_in(problem: str) -> str | None:
    """The TOML key an error is about, from its text (``setting 'x'``, ``pipeline 'x'``, ``depth ...``)."""
    for pattern in (r"(?:unknown )?setting '(\w+)'", r"pipeline (?:name )?'([^']+)'", r"(measure)s? ", r"(\w+) "):
        found = re.match(pattern, problem)
        if found:
            return {"measure": "measures"}.get(found.group(1), found.group(1))
    return None


@dataclass(frozen=True)
class ExperimentSpec:
    """A parsed, validated experiment file (its keys are these fields)."""

    collection: str = option(help="a BEIR folder, or a collection name under the data root")
    pipelines: dict[str, str] = option(help="[pipelines] table: name = \"expression\", in order")
    measures: list[str] = option(["nDCG@10", "AP", "R@100"], help="measure names (ir_measures)")
    split: str = option("test", help="qrels split")
    baseline: str = option("", help="the pipeline the others are compared with (default: the first)")
    depth: int = option(1000, help="documents kept per query")
    seed: int = option(0, help="seed for components and the randomization test")
    recall_depths: list[int] | None = option(None, help="x axis of the recall plot (default: 10 ... 1000, <= depth)")
    title: str = option("", help="report title (default: the file name)")
    data_root: str | None = option(None, help="folder holding collections by name (relative to the file)")
    permutations: int = option(10000, help="randomization test permutations")
    alpha: float = option(0.05, help="significance level (Holm-corrected)")

    def __post_init__(self) -> None:
        from rankstack.evaluate.measures import parse_measure

        if not self.pipelines:
            raise _bad("a [pipelines] table with at least one 'name = \"expression\"' is required", None,
                       fix='[pipelines]\nbm25 = "bm25"')
        for name, expr in self.pipelines.items():
            if not name.isidentifier():
                raise _bad(f"pipeline name {name!r} is not an identifier (later pipelines could not name it)", name,
                           fix="use letters, digits and underscores")
            if not isinstance(expr, str) or not expr.strip():
                raise _bad(f"pipeline {name!r} must be an expression string", name, fix=f'{name} = "bm25 % 100"')
        if not self.measures:
            raise _bad("'measures' must be a non-empty list of measure names", "measures")
        for m in self.measures:
            try:
                parse_measure(m)
            except InputError as exc:
                raise _bad(f"measure {m!r}: {exc.problem}", "measures", fix=exc.fix) from None
        if self.baseline and self.baseline not in self.pipelines:
            raise _bad(f"baseline {self.baseline!r} is not a pipeline", "baseline",
                       fix=f"choose one of {list(self.pipelines)}")
        if self.depth < 1:
            raise _bad(f"depth must be a positive integer, got {self.depth!r}", "depth")
        if self.recall_depths is not None and (not self.recall_depths or min(self.recall_depths) < 1):
            raise _bad("recall_depths must be a list of positive integers", "recall_depths")
        if self.permutations < 1:
            raise _bad("permutations must be a positive integer", "permutations")
        if not 0 < self.alpha < 1:
            raise _bad("alpha must be in (0, 1)", "alpha")
        # derived defaults (frozen: set once, here)
        object.__setattr__(self, "baseline", self.baseline or next(iter(self.pipelines)))
        object.__setattr__(self, "title", self.title or "experiment")
        recall = self.recall_depths or [k for k in DEFAULT_RECALL if k <= self.depth] or [self.depth]
        object.__setattr__(self, "recall_depths", sorted(set(recall)))
        object.__setattr__(self, "path", None)

    def line_of(self, key: str) -> int | None:
        """Best-effort line of ``key =`` in the file, so errors point at it."""
        return _line_of(self.path, key) if self.path else None


def _line_of(path: Path, key: str) -> int | None:
    try:
        for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
            if line.strip().startswith((f"{key} ", f"{key}=", f'"{key}"')):
                return number
    except (OSError, UnicodeDecodeError):
        pass
    return None


def _load_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    if path.is_dir():
        raise InputError("experiment file is a folder", path=path, fix="give the .toml file")
    try:
        return tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise InputError("experiment file does not exist", path=path) from None
    except PermissionError:
        raise InputError("experiment file is not readable (permission denied)", path=path,
                         fix="check the file's permissions") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"experiment file is not UTF-8 ({exc})", path=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"invalid TOML: {exc}", path=path, line=getattr(exc, "lineno", None)) from None
    except RecursionError:
        raise InputError("invalid TOML: values are nested too deeply", path=path,
                         fix="flatten the nested arrays or tables") from None


def load_experiment(path: str | Path) -> ExperimentSpec:
    """Parse and check an experiment TOML file; every error names the file (and the key's line)."""
    from rankstack.recipes.config import from_mapping

    path = Path(path)
    raw = _load_toml(path)
    raw.setdefault("title", path.stem)
    if isinstance(raw.get("measures"), str):
        raw["measures"] = [raw["measures"]]
    try:
        spec = from_mapping(ExperimentSpec, raw, source=str(path))
    except InputError as exc:
        key = _key_in(exc.problem)
        raise InputError(exc.problem, path=path, line=_line_of(path, key) if key else None, fix=exc.fix) from None
    object.__setattr__(spec, "path", path)
    return spec


def _collection_and_inputs(spec: ExperimentSpec, data_root: str | Path | None):
    from rankstack.data.beir import Collection, default_data_root

    root = data_root or spec.data_root
    if root is not None and spec.path is not None and not Path(root).is_absolute() and data_root is None:
        root = spec.path.parent / root
    collection = Collection(spec.collection, data_root=root)
    inputs = [Path(collection.path), Path(root) if root is not None else default_data_root()]
    if spec.path is not None:
        inputs.append(spec.path)
    return collection, inputs


def run_experiment(spec: ExperimentSpec | str | Path, out_dir: str | Path | None = None,
                   cache_dir: str | Path | None = Path(".cache/rankstack"), data_root: str | Path | None = None,
                   use_cache: bool = True, report: bool = True, executor: Any = None):
    """Run every pipeline (or load its cached run), compare with the baseline, write the outputs.

    Writes ``out_dir`` (when given) as one ``experiment`` folder: ``runs/<name>.trec``,
    ``measures.txt``, ``results.json``, ``per_query.csv``, ``report.html`` and a manifest. It replaces
    an earlier experiment folder there and refuses anything else (and any folder in or over an input).
    """
    from rankstack.experiment.runner import run_pipelines, save_outputs
    from rankstack.storage import check_output_file

    if not isinstance(spec, ExperimentSpec):
        spec = load_experiment(spec)
    collection, inputs = _collection_and_inputs(spec, data_root)
    if out_dir is not None:
        check_output_file(Path(out_dir) / "results.json", inputs)  # fail before any work
    result = run_pipelines(spec, collection, cache_dir=cache_dir, use_cache=use_cache, inputs=inputs,
                           executor=executor)
    if out_dir is not None:
        save_outputs(result, out_dir, report=report, inputs=inputs)
    return result


@dataclass(frozen=True)
class ExperimentConfig:
    """``rankstack experiment FILE.toml``: how to run an experiment file (the file holds what to run)."""

    file: Path = option(help="experiment TOML file")
    out: Path | None = option(None, help="output folder (none: out/<file stem>); an earlier experiment folder "
                                         "there is replaced, any other folder is refused")
    data_root: str | None = option(None, help="folder holding collections by name (overrides the file's; default: "
                                              "$RANKSTACK_DATA or ../shared/data)")
    cache: bool = option(True, help="use cached runs (--no-cache recomputes every run and refreshes the cache)")
    report: bool = option(True, help="write report.html (--no-report: no matplotlib needed)")
    cache_dir: Path | None = option(Path(".cache/rankstack"), help="where indexes and runs are cached "
                                                                   "('none' disables caching)")
    execution: Literal["local", "ray"] = option("local", help=EXECUTION_HELP + " (dense corpus encoding and "
                                                              "cross-encoder scoring inside the pipelines)")
    ray_address: str | None = option(None, help=RAY_ADDRESS_HELP)
    workers: int = option(2, help=WORKERS_HELP)


@dataclass
class ExperimentOutcome:
    result: Any
    out: Path
    report: bool

    def to_text(self) -> str:
        lines = [(self.out / "measures.txt").read_text("utf-8").rstrip("\n")]
        for name in self.result.spec.pipelines:
            how = "cached" if self.result.cached[name] else f"{self.result.seconds[name]:.1f}s"
            lines.append(f"  {name}: {how}")
        lines.append(f"wrote {self.out}/ (runs/, measures.txt, results.json, per_query.csv"
                     + (", report.html" if self.report else "") + ")")
        return "\n".join(lines)


def run(config: ExperimentConfig, *, progress: bool = True) -> ExperimentOutcome:
    """Load the file, run (or reuse) every pipeline, compare, write the output folder."""
    spec = load_experiment(config.file)
    out = config.out or Path("out") / config.file.stem
    executor = executor_for(config)
    try:
        result = run_experiment(spec, out_dir=out, cache_dir=config.cache_dir, data_root=config.data_root,
                                use_cache=config.cache, report=config.report, executor=executor)
    finally:
        if executor is not None:
            executor.close()
    return ExperimentOutcome(result, out, config.report)
