"""Synthetic queries for ``adapt`` (a helper of :mod:`rankstack.recipes.adapt`): generate or read, then filter.

Why a helper: ``adapt`` either reads a file of queries made earlier (``--queries``, from ``rankstack
generate-queries``) or runs the generation recipe itself into a work folder keyed by the generation
settings (so an interrupted ``adapt`` resumes its queries instead of paying for them again), then
applies the configured pair filters in order -- InPars' top fraction by log-probability (Bonifacio et
al. 2022) and round-trip consistency with BM25 (Alberti et al. 2019) -- counting what each keeps.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rankstack.synth.records import SyntheticQuery

__all__ = ["SyntheticSet", "synthetic_queries", "apply_filters", "work_folder"]

log = logging.getLogger(__name__)

GENERATION_KEYS = ("generator", "selection", "max_docs", "seed")


@dataclass
class SyntheticSet:
    """The filtered queries and what producing them took."""

    records: list[SyntheticQuery]
    path: Path
    generator: str
    generated: int
    kept: dict[str, int]  # filter name -> pairs left after it, in order
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"file": str(self.path), "generator": self.generator, "generated": self.generated,
                "kept": self.kept, "seconds": round(self.seconds, 2), **self.details}


def work_folder(config: Any, collection: Any) -> Path:
    """``--work-dir``, else ``CACHE/adapt/<collection>-<hash of the generation settings>``."""
    if config.work_dir is not None:
        return Path(config.work_dir)
    from rankstack.storage import fingerprint

    settings = {k: getattr(config, k) for k in GENERATION_KEYS}
    key = hashlib.sha256(json.dumps({"corpus": fingerprint(collection.corpus_path), **settings},
                                    sort_keys=True, default=str).encode()).hexdigest()[:12]
    base = Path(config.cache_dir) if config.cache_dir is not None else Path(".cache/rankstack")
    return base / "adapt" / f"{Path(collection.path).name}-{key}"


def apply_filters(config: Any, collection: Any, records: Sequence[SyntheticQuery]) -> tuple[list[SyntheticQuery],
                                                                                          dict[str, int]]:
    """The configured filters in order; returns the kept records and the count after each filter."""
    from rankstack.recipes.adapt import filter_names
    from rankstack.synth.filters import bm25_search, inpars_filter, round_trip_filter

    kept = list(records)
    counts: dict[str, int] = {}
    for name in filter_names(config.filters):
        if name == "inpars":
            kept, report = inpars_filter(kept, config.keep_fraction)
        else:
            kept, report = round_trip_filter(kept, bm25_search(collection), config.roundtrip_k)
        log.info("%s", report)
        counts[name] = report.kept
    return kept, counts


def synthetic_queries(config: Any, collection: Any, *, progress: bool | None = True,
                      backend: Any = None) -> SyntheticSet:
    """Read ``config.queries`` or generate into the work folder (resuming), then filter."""
    from rankstack.synth.records import read_synthetic_header, read_synthetic_queries

    t0 = time.perf_counter()
    details: dict[str, Any] = {}
    if config.queries is not None:
        path = Path(config.queries)
        records = read_synthetic_queries(path)
        generator = read_synthetic_header(path)["generator"]
    else:
        path, generator, details = _generate(config, collection, progress=progress, backend=backend)
        records = read_synthetic_queries(path)
    seconds = time.perf_counter() - t0
    kept, counts = apply_filters(config, collection, records)
    return SyntheticSet(kept, path, generator, len(records), counts, seconds, details)


def _generate(config: Any, collection: Any, *, progress: bool | None,
              backend: Any = None) -> tuple[Path, str, dict[str, Any]]:
    """Run the generation recipe (``rankstack generate-queries``) into the work folder; resumes."""
    from rankstack.recipes import generate

    folder = work_folder(config, collection)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "queries.jsonl"
    resume = path.exists() and path.stat().st_size > 0
    if resume:
        log.info("resuming the synthetic queries in %s", path)
    gcfg = generate.GenerateConfig(
        collection=config.collection, out=path, generator=config.generator, selection=config.selection,
        max_docs=config.max_docs, time_budget=config.generation_budget_minutes, resume=resume,
        data_root=config.data_root, seed=config.seed, threads=config.threads, precision=config.precision,
        cache_dir=Path(config.cache_dir) if config.cache_dir is not None else Path(".cache/rankstack"))
    outcome = generate.run(gcfg, progress=progress, backend=backend)
    if outcome.stopped_by_budget:
        log.warning("generation stopped by its budget: training on the %d queries made so far (run adapt again "
                    "to continue generating)", outcome.already_done + outcome.written)
    details = {"generation": {k: v for k, v in outcome.to_dict().items() if k != "out"}}
    return path, outcome.generator, details
