"""First stages and measurement: ``rankstack index`` (BM25 folder), ``retrieve`` (a run file), ``evaluate``.

Why a recipe: the index must never be written into or over its collection or the data root, never
replace a folder that is not an index, and replace an index only when asked (``overwrite``); these
rules and the options live here once, for the command line and the service. BM25's parameters keep
their defaults in one place, :class:`rankstack.retrieve.bm25.BM25Retriever`: an option left unset here
means "BM25's default"; ``retriever`` takes the same spec as pipelines (``bm25(k1=1.2, b=0.75)``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rankstack.errors import InputError
from rankstack.recipes.config import option

__all__ = ["IndexConfig", "IndexOutcome", "run", "RetrieveConfig", "RetrieveOutcome", "run_retrieve",
           "EvaluateConfig", "EvaluateOutcome", "run_evaluate", "executor_for"]

log = logging.getLogger(__name__)


def _inputs(collection: Any, data_root: str | None) -> list[Path]:
    from rankstack.data.beir import default_data_root

    return [Path(collection.path), Path(data_root) if data_root else default_data_root()]


@dataclass(frozen=True)
class IndexConfig:
    """``rankstack index``: a BM25 index folder (atomic, with a checksummed manifest)."""

    collection: str = option(help="a BEIR folder or a name under the data root")
    out: Path = option(help="index folder to write (never the collection, inside it or the data root)")
    data_root: str | None = option(None, help="folder holding collections by name ($RANKSTACK_DATA or ../shared/data)")
    retriever: str = option("bm25", metavar="SPEC", help="BM25 spec, e.g. 'bm25(k1=1.2, b=0.75, stemmer=None)'")
    k1: float | None = option(None, help="BM25 k1 (none: BM25's default)")
    b: float | None = option(None, help="BM25 b (none: BM25's default)")
    method: str = option("", help="lucene, robertson, atire, bm25l or bm25+ (empty: BM25's default)")
    stemmer: str = option("", help="Snowball stemmer name, or 'none' (empty: BM25's default)")
    stopwords: str = option("", help="'en' or 'none' (empty: BM25's default)")
    fields: list[str] | None = option(None, help="document fields to index (none: BM25's default)")
    overwrite: bool = option(False, help="replace an index already at --out")
    chunk_size: int | None = option(None, help="read and tokenise the corpus in chunks of this many documents "
                                               "(bounded memory, identical index; none: all at once)")

    def bm25_args(self) -> dict[str, Any]:
        from rankstack.pipeline.expression import parse_component

        name, args = parse_component(self.retriever, what="retriever")
        if name != "bm25":
            raise InputError(f"'rankstack index' builds BM25 indexes, not {name!r}", fix="--retriever 'bm25(...)'")
        given = {"k1": self.k1, "b": self.b, "method": self.method or None, "fields": self.fields,
                 "stemmer": self.stemmer or None, "stopwords": self.stopwords or None}
        args.update({k: v for k, v in given.items() if v is not None})
        for key in ("stemmer", "stopwords"):
            if isinstance(args.get(key), str) and args[key].lower() == "none":
                args[key] = None
        return args

    def __post_init__(self) -> None:
        self.bm25_args()


@dataclass
class IndexOutcome:
    out: Path
    collection: str
    num_docs: int
    seconds: float

    def to_text(self) -> str:
        return f"indexed {self.num_docs} documents of {self.collection} into {self.out} in {self.seconds:.1f}s"


def run(config: IndexConfig, *, progress: bool = True) -> IndexOutcome:
    """Index, then save crash-safely; the save refuses the collection, anything inside it or the data
    root, a folder that is not an index, and an index unless ``overwrite``."""
    from rankstack.data.beir import Collection
    from rankstack.retrieve.bm25 import BM25Retriever

    collection = Collection(config.collection, data_root=config.data_root)
    inputs = _inputs(collection, config.data_root)
    start = time.perf_counter()
    retriever = BM25Retriever.from_collection(collection, chunk_size=config.chunk_size, **config.bm25_args())
    retriever.save(config.out, overwrite=config.overwrite, inputs=inputs)
    return IndexOutcome(config.out, collection.name, retriever.num_docs, time.perf_counter() - start)


EXECUTION_HELP = "where heavy batch work runs: local, or ray (Ray Data actor pools; identical results)"
RAY_ADDRESS_HELP = "with --execution ray: a cluster to join (e.g. ray://head:10001 or auto); none = a local one"
WORKERS_HELP = "with --execution ray: actors, each holding one model (one CPU each)"


def executor_for(config: Any) -> Any:
    """The rankstack.engine executor a config's execution options ask for (None for local)."""
    if getattr(config, "execution", "local") == "local":
        return None
    from rankstack.engine import ExecutionOptions, get_executor

    return get_executor(ExecutionOptions(execution=config.execution, ray_address=config.ray_address,
                                         workers=config.workers))


@dataclass(frozen=True)
class RetrieveConfig:
    """``rankstack retrieve``: a first stage or any pipeline over a collection's queries, as a TREC run."""

    collection: str = option(help="a BEIR folder, or a collection name under the data root (e.g. scifact)")
    out: Path = option(help="TREC run file to write")
    data_root: str | None = option(None, help="folder holding collections by name ($RANKSTACK_DATA or ../shared/data)")
    split: str = option("test", help="qrels split whose queries are run")
    retriever: str = option("bm25", help="registered first stage or pipeline expression")
    k: int = option(1000, flag="-k", help="documents kept per query (pushed down: retrievers return at least k)")
    tag: str | None = option(None, help="run tag (none: the file stem)")
    cache_dir: Path | None = option(Path(".cache/rankstack"), help="where indexes and stage outputs are cached "
                                                                   "('none' disables caching)")
    execution: Literal["local", "ray"] = option("local", help=EXECUTION_HELP + " (dense corpus encoding)")
    ray_address: str | None = option(None, help=RAY_ADDRESS_HELP)
    workers: int = option(2, help=WORKERS_HELP)

    def __post_init__(self) -> None:
        if self.k < 1:
            raise InputError(f"-k must be a positive integer, got {self.k}")
        if self.workers < 1:
            raise InputError(f"--workers must be a positive integer, got {self.workers}")


@dataclass
class RetrieveOutcome:
    out: Path
    queries: int
    rows: int
    seconds: float

    def to_text(self) -> str:
        return (f"wrote {self.out}: {self.queries} queries, {self.rows} rows "
                f"({self.queries / max(self.seconds, 1e-9):.0f} queries/s)")


def run_retrieve(config: RetrieveConfig, *, progress: bool = True) -> RetrieveOutcome:
    """``pipeline % k`` over the split's queries (``% k`` asks every retriever for at least k)."""
    from rankstack.data.beir import Collection
    from rankstack.data.trec import write_run
    from rankstack.pipeline.expression import parse_pipeline
    from rankstack.registry import Context
    from rankstack.storage import check_output_file

    collection = Collection(config.collection, data_root=config.data_root)
    inputs = _inputs(collection, config.data_root)
    check_output_file(config.out, inputs)
    queries = collection.queries(config.split)
    executor = executor_for(config)
    try:
        extras = {"executor": executor} if executor is not None else {}
        context = Context(collection=collection, cache_dir=config.cache_dir, extras=extras)
        stage = parse_pipeline(config.retriever, context) % config.k
        start = time.perf_counter()
        result = stage(queries)
        took = time.perf_counter() - start
    finally:
        if executor is not None:
            executor.close()
    write_run(result, config.out, tag=config.tag or config.out.stem)
    return RetrieveOutcome(config.out, len(result.query_ids), len(result), took)


@dataclass(frozen=True)
class EvaluateConfig:
    """``rankstack evaluate``: measure TREC runs against a collection's qrels (trec_eval semantics)."""

    runs: list[Path] = option(help="TREC run files", metavar="RUN")
    collection: str | None = option(None, help="a BEIR folder, or a collection name under the data root")
    data_root: str | None = option(None, help="folder holding collections by name ($RANKSTACK_DATA or ../shared/data)")
    split: str = option("test", help="qrels split")
    qrels: Path | None = option(None, help="a qrels file (TREC or BEIR TSV) instead of --collection")
    measures: list[str] = option(["nDCG@10", "AP", "R@100", "RR@10"], flag="--measure", short="-m",
                                 help="ir_measures names; repeat -m or give several")
    missing: Literal["skip", "zero"] = option("skip", help="queries in the qrels but not in a run: skip them "
                                                           "(trec_eval default) or count 0 (trec_eval -c)")
    baseline: str | None = option(None, help="run name (file stem) to compare the others with: paired t-test and "
                                             "permutation test, Holm-corrected")
    json: Path | None = option(None, help="write {run: {measure: mean}} here")
    per_query: Path | None = option(None, help="with --baseline: per-query CSV here")
    execution: Literal["local", "ray"] = option("local", help=EXECUTION_HELP + " (one task per run file)")
    ray_address: str | None = option(None, help=RAY_ADDRESS_HELP)
    workers: int = option(2, help=WORKERS_HELP)

    def __post_init__(self) -> None:
        if self.qrels is None and self.collection is None:
            raise InputError("give --collection (with --split) or --qrels")
        if self.per_query is not None and self.baseline is None:
            raise InputError("--per-query needs --baseline (its rows are deltas against the baseline run)",
                             fix="add --baseline RUN_NAME (a run file's stem)")


@dataclass
class EvaluateOutcome:
    results: dict[str, Any]
    comparison: Any

    def to_text(self) -> str:
        from rankstack.evaluate import format_table

        return self.comparison.to_text() if self.comparison is not None else format_table(self.results)


def run_evaluate(config: EvaluateConfig, *, progress: bool = True) -> EvaluateOutcome:
    """Evaluate every run; with a baseline, compare (significance tests); write JSON / CSV if asked."""
    import json

    from rankstack.data import read_qrels, read_run
    from rankstack.data.beir import Collection
    from rankstack.evaluate import compare, evaluate
    from rankstack.storage import atomic_write_text, check_output_file

    collection = None if config.qrels is not None else Collection(config.collection, data_root=config.data_root)
    inputs = [*config.runs, *([config.qrels] if config.qrels else []),
              *(_inputs(collection, config.data_root) if collection is not None else [])]
    for out in (config.json, config.per_query):
        if out is not None:
            check_output_file(out, inputs)
    qrels = read_qrels(config.qrels) if collection is None else collection.qrels(config.split)
    runs = {}
    for path in config.runs:
        r = read_run(path)
        if r.name in runs:
            raise InputError(f"two runs are named {r.name!r}", path=path, fix="give run files distinct names")
        runs[r.name] = r
    executor = executor_for(config)
    if executor is None:
        results = {name: evaluate(r, qrels, config.measures, missing=config.missing) for name, r in runs.items()}
    else:  # the same evaluate() per run file, in Ray workers; equal to the local values bit for bit
        try:
            evaluations = executor.evaluate_runs([str(p) for p in config.runs], qrels, config.measures,
                                                 missing=config.missing)
        finally:
            executor.close()
        results = dict(zip(runs, evaluations))
    comparison = None
    if config.baseline is not None:
        if config.baseline not in runs:
            raise InputError(f"baseline {config.baseline!r} is not one of the runs {sorted(runs)}")
        comparison = compare(runs, qrels, config.measures, baseline=config.baseline, missing=config.missing)
        if config.per_query:
            comparison.to_csv(config.per_query)
    if config.json:
        payload = {name: dict(ev.mean) for name, ev in results.items()}
        atomic_write_text(config.json, json.dumps(payload, indent=2) + "\n", inputs=inputs, kind="json")
    return EvaluateOutcome(results, comparison)
