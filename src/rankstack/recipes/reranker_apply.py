"""Rerank a TREC run with a trained cross-encoder and write a TREC run (``rankstack rerank``).

Why a recipe: reading the run, matching its queries to the collection's split, building the
reranker and writing the result are the same for the CLI, a TOML file and the service; the
defaults live once, in :class:`RerankConfig`.

``--precision auto`` measures the inference paths (:mod:`rankstack.rerank.calibrate`) on
``--calibration-pairs`` pairs: BM25's top 20 for training queries of the collection that the model
held out for validation (read from its manifest), else the collection's training queries, else the
run being reranked (then without the nDCG@10 check); the test split is never used. The decision is
cached under ``--cache-dir`` per model, CPU and threads, and printed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rankstack.errors import InputError
from rankstack.recipes.config import option

__all__ = ["RerankConfig", "RerankResult", "run"]


@dataclass(frozen=True)
class RerankConfig:
    """``rankstack rerank``: the top k of a first-stage run reranked (optionally fused with it)."""

    model: str = option(help="model folder written by 'rankstack train reranker' (or any local one-logit "
                             "transformers model)")
    collection: str = option(help="a BEIR folder, or a collection name under the data root (e.g. scifact)")
    run: Path = option(help="TREC run to rerank (its queries come from --split)")
    out: Path = option(help="TREC run file to write")
    data_root: str | None = option(None, help="folder holding collections by name ($RANKSTACK_DATA or ../shared/data)")
    split: str = option("test", help="qrels split whose queries the run holds ('all': every query)")
    k: int = option(100, flag="-k", help="rerank the top k per query; the rest stay below")
    keep: int | None = option(None, help="documents written per query (none: all)")
    interpolate: float | None = option(None, metavar="ALPHA", help="final = ALPHA * norm(reranker) + (1 - ALPHA) * "
                                                                    "norm(first stage)")
    rrf: bool = option(False, help="reciprocal rank fusion with the first stage")
    norm: Literal["zscore", "minmax"] = option("zscore", help="score normalisation for --interpolate")
    max_length: int | None = option(None, help="tokens per pair (none: the model's)")
    batch_size: int = option(16, help="pairs per forward (16 ran faster per pair than 32 on a 2-core CPU)")
    precision: Literal["auto", "native", "fp32", "bf16", "bf16-weights", "torch-int8", "onnx-fp32", "onnx-int8"] = option(
        "auto", help="auto = measure the paths on this CPU once (cached) and use the fastest whose scores correlate "
                     ">= 0.999 with fp32 and whose nDCG@10 on held-out training queries is within 0.002; native = "
                     "bf16 autocast where the CPU has it, else fp32; or one path by name")
    compile: bool = option(False, help="torch.compile the model (Inductor, frozen weights): 20-50 s once, then "
                                       "~1.2x faster in fp32, not reliably in bf16 (benchmarks/inference.md)")
    calibration_pairs: int = option(300, help="with --precision auto: pairs scored by every path")
    recalibrate: bool = option(False, help="with --precision auto: measure again even if a decision is cached")
    cache_dir: Path = option(Path(".cache/rankstack"), help="ONNX exports, calibration decisions, BM25 index")
    threads: int | None = option(None, help="torch threads while scoring (none: torch's choice)")
    tag: str | None = option(None, help="run tag (none: the file stem)")
    execution: Literal["local", "ray"] = option("local", help="where pairs are scored: local, or ray (Ray Data actor "
                                                            "pools, each building the model once; identical scores)")
    ray_address: str | None = option(None, help="with --execution ray: a cluster to join (e.g. auto); none = a local one")
    workers: int = option(2, help="with --execution ray: actors, each holding one model (one CPU, one torch thread)")

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise InputError(f"--workers must be a positive integer, got {self.workers}")
        if self.k < 1:
            raise InputError(f"-k must be a positive integer, got {self.k}")
        if self.keep is not None and self.keep < 1:
            raise InputError(f"--keep must be a positive integer, got {self.keep}")
        if self.interpolate is not None and not 0 <= self.interpolate <= 1:
            raise InputError(f"--interpolate must be in [0, 1], got {self.interpolate}",
                             fix="ALPHA is the reranker's weight: 1 = reranker only, 0 = first stage only")
        if self.calibration_pairs < 1:
            raise InputError(f"--calibration-pairs must be a positive integer, got {self.calibration_pairs}")
        if self.interpolate is not None and self.rrf:
            raise InputError("--interpolate and --rrf are two ways to fuse: give one",
                             fix="drop --rrf, or drop --interpolate")


@dataclass
class RerankResult:
    """What :func:`run` wrote and how fast it scored."""

    out: Path
    queries: int
    rows: int
    pairs: int
    seconds: float
    pairs_per_s: float
    precision: str
    calibration: Any = None  # the rankstack.encode.calibrate.Decision behind --precision auto

    def to_text(self) -> str:
        head = self.calibration.to_text() + "\n" if self.calibration is not None else ""
        return (f"{head}wrote {self.out}: {self.queries} queries, {self.rows} rows; {self.pairs} pairs "
                f"in {self.seconds:.1f}s ({self.pairs_per_s:.0f} pairs/s, {self.precision})")


def _saved_manifest(model: str | Path) -> dict[str, Any] | None:
    """A rankstack cross-encoder's manifest, checked (JSON, own checksum, kind, version; the weights are
    verified when the model loads), or None for a plain transformers folder: a corrupt one is the
    loader's one-line error here too, before any calibration work."""
    from rankstack.rerank.cross_encoder import FORMAT_VERSION, KIND
    from rankstack.storage import MANIFEST, read_manifest

    if not (Path(model) / MANIFEST).is_file():
        return None
    return read_manifest(model, KIND, (FORMAT_VERSION,), verify=False)


def _first_score_depth(manifest: dict[str, Any] | None) -> int | None:
    """The depth a score-in-input model normalises its first-stage scores over (its manifest's
    ``first_score_depth``; the whole list when it names none), or None for a model of bare pairs."""
    params = (manifest or {}).get("params") or {}
    if not params.get("first_score_in_input"):
        return None
    return int(params.get("first_score_depth") or 1000)


def _calibration_source(config: RerankConfig, collection: Any, first: Any, manifest: dict[str, Any] | None,
                        depth: int = 20) -> tuple[Any, Any]:
    """(run with query texts, qrels or None) whose pairs calibrate: held-out training queries of the
    model's collection if its manifest names them, else the collection's train split, else ``first``.
    ``depth``: how deep BM25 retrieves them (a score-in-input model needs its normalisation depth)."""
    from rankstack.registry import Context, build

    if "train" not in collection.splits():
        return first, None
    queries, qrels = collection.queries("train"), collection.qrels("train")
    qids = list(queries.qids)  # Collection.queries(split) holds the judged ones
    if manifest is not None:
        training = manifest.get("training") or {}
        cfg = training.get("config") or {}
        same = str(training.get("collection", "")) and Path(str(training["collection"])).resolve() == \
            Path(collection.path).resolve()
        if same and cfg.get("split", "train") == "train" and cfg.get("validation"):
            from rankstack.recipes.reranker_data import split_queries

            qids = split_queries(list(queries.qids), int(cfg["validation"]), seed=int(cfg.get("seed", 0)))[1]
    if not qids:
        return first, None
    sub = queries.subset(qids)
    bm25 = build("bm25", "retriever", context=Context(collection=collection, cache_dir=config.cache_dir))
    return (bm25 % depth)(sub).with_queries(queries), qrels


def run(config: RerankConfig, *, progress: bool = True) -> RerankResult:
    """Read the run, rerank its top k with the cross-encoder, write the new run."""
    from rankstack.data.beir import Collection, default_data_root
    from rankstack.data.trec import read_run, write_run
    from rankstack.rerank.cross_encoder import CrossEncoderReranker
    from rankstack.storage import check_output_file

    collection = Collection(config.collection, data_root=config.data_root)
    root = Path(config.data_root) if config.data_root else default_data_root()
    check_output_file(config.out, (collection.path, root, config.run, Path(config.model)))
    first = read_run(config.run)
    queries = collection.queries(config.split if config.split != "all" else None)
    missing = [q for q in first.query_ids if q not in queries]
    if missing:
        all_q = collection.queries(None)
        if any(q not in all_q for q in missing):
            raise InputError(f"run {config.run} has {len(missing)} queries not in the collection, e.g. "
                             f"{missing[0]!r}", path=config.run, fix="rerank a run of the same collection")
        queries = all_q
    first = first.restrict(q for q in first.query_ids if q in queries).with_queries(queries)
    combine = "interpolate" if config.interpolate is not None else ("rrf" if config.rrf else None)
    precision, decision = ("auto" if config.precision == "native" else config.precision), None
    if config.precision == "auto":
        from rankstack.rerank.calibrate import calibrate_reranker, calibration_pairs

        manifest = _saved_manifest(config.model)
        score_depth = _first_score_depth(manifest)
        source, qrels = _calibration_source(config, collection, first, manifest, depth=max(20, score_depth or 0))
        pairs = calibration_pairs(source, collection.doc_texts, qrels, pairs=config.calibration_pairs,
                                  first_score_depth=score_depth)
        decision = calibrate_reranker(config.model, pairs, max_length=config.max_length, batch_size=config.batch_size,
                                      threads=config.threads, cache_dir=config.cache_dir, force=config.recalibrate)
        precision = decision.path
    reranker = CrossEncoderReranker(config.model, documents=collection, max_length=config.max_length,
                                    batch_size=config.batch_size, precision=precision, threads=config.threads,
                                    cache_dir=config.cache_dir, compile=config.compile,
                                    depth=config.k, combine=combine,
                                    alpha=config.interpolate if config.interpolate is not None else 0.5,
                                    norm=config.norm, progress=progress)
    executor = None
    if config.execution == "ray":
        from rankstack.engine import attach_pair_executor
        from rankstack.engine.pairs import reranker_spec
        from rankstack.recipes.index import executor_for

        executor = executor_for(config)
        # workers rebuild the model from this spec; precision is the one resolved here, so every node
        # computes the same path (batches, depth and fusion stay on this process)
        attach_pair_executor(reranker, reranker_spec(config.model, max_length=reranker.max_length,
                                                     batch_size=config.batch_size,
                                                     precision=reranker.precision_used), executor)
    try:
        start = time.perf_counter()
        out = reranker(first)
        took = time.perf_counter() - start
    finally:
        if executor is not None:
            executor.close()
    if config.keep:
        out = out.top_k(config.keep)
    write_run(out, config.out, tag=config.tag or config.out.stem)
    stats = reranker.last_stats
    return RerankResult(out=config.out, queries=len(out.query_ids), rows=len(out), pairs=int(stats.get("pairs", 0)),
                        seconds=took, pairs_per_s=float(stats.get("pairs_per_s", 0)), precision=reranker.precision_used,
                        calibration=decision)
