"""``rankstack serve``: what the search service serves and with which limits (the start-up logic).

Why a recipe: the CLI, tests and anyone embedding the service start it the same way — one typed
:class:`ServeConfig` (defaults declared once; CLI flags derived from it) and :func:`load`, which
turns the config into a built pipeline over a collection. The HTTP layer (:mod:`rankstack.service`)
only calls :func:`load`; it never parses pipelines or experiment files itself.

``target`` is either a pipeline expression (``"bm25 % 20 >> reranker(model='DIR')"``, needs
``collection``) or an experiment TOML file (:mod:`rankstack.recipes.experiment`): then
``pipeline`` picks one of its pipelines (default: its baseline, i.e. the first), the collection is
the file's unless ``collection`` overrides it, and pipelines the chosen one names are built the way
the experiment engine builds them (:class:`rankstack.experiment.runner.NamedPipeline`).

The pipeline is built once here and then warmed up with one query, so that lazy work (index
building, model loading, corpus loading) happens at start-up, not in the first request.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rankstack.errors import InputError
from rankstack.recipes.config import option

__all__ = ["ServeConfig", "Served", "load", "is_loopback"]

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost' (the only addresses tests and benchmarks may use)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeConfig:
    """``rankstack serve TARGET``: the pipeline to serve, the collection, the server and its limits."""

    target: str = option(help="a pipeline expression (\"bm25 % 20 >> reranker(model='DIR')\") or an experiment "
                              "TOML file", metavar="PIPELINE_OR_EXPERIMENT")
    collection: str | None = option(None, help="BEIR folder or collection name under the data root (required for "
                                               "an expression; overrides an experiment file's)")
    pipeline: str | None = option(None, help="which pipeline of the experiment file to serve (default: its "
                                             "baseline/first)")
    experiments: list[Path] = option([], help="experiment output folders the workbench may browse", metavar="DIR")
    data_root: str | None = option(None, help="folder holding collections by name (default: $RANKSTACK_DATA or "
                                              "../shared/data)")
    cache_dir: Path | None = option(Path(".cache/rankstack"), help="where indexes and embeddings are cached "
                                                                   "('none' disables caching)")
    host: str = option("127.0.0.1", help="address to listen on (anything but loopback exposes the service)")
    port: int = option(8000, help="TCP port (0: any free port)")
    workers: int = option(1, help="worker threads running inference (each request holds one while it computes)")
    queue: int = option(16, help="requests that may wait for a worker; beyond workers + queue the service "
                                 "answers 503 with Retry-After at once")
    timeout: float = option(30.0, help="seconds a request may wait and compute before it gets 504")
    torch_threads: int = option(1, help="torch intra-op threads, set once at start-up (1 is often fastest on a "
                                        "busy 2-core machine)")
    max_body_bytes: int = option(16 << 20, help="largest request body accepted (bigger ones get 413 before "
                                                "they are read)")
    warmup: bool = option(True, help="run one query at start-up so indexes and models load before the first "
                                     "request (--no-warmup skips it)")

    def __post_init__(self) -> None:
        if not isinstance(self.target, str) or not self.target.strip():
            raise InputError("the pipeline or experiment file is empty",
                             fix="give an expression such as 'bm25 % 100' or a .toml file")
        for name, value, low, high in (("port", self.port, 0, 65535), ("workers", self.workers, 1, 64),
                                       ("queue", self.queue, 0, 100000), ("torch_threads", self.torch_threads, 1, 256),
                                       ("max_body_bytes", self.max_body_bytes, 1024, 1 << 30)):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise InputError(f"--{name.replace('_', '-')} must be an integer in [{low}, {high}], got {value!r}")
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float)) or not 0 < self.timeout <= 3600:
            raise InputError(f"--timeout must be a number of seconds in (0, 3600], got {self.timeout!r}")
        if not isinstance(self.host, str) or not self.host.strip():
            raise InputError("--host is empty", fix="use 127.0.0.1")
        for folder in self.experiments:
            if not Path(folder).is_dir():
                raise InputError("experiment output folder does not exist", path=folder,
                                 fix="give a folder written by 'rankstack experiment ... --out DIR'")

    @property
    def is_experiment_file(self) -> bool:
        return self.target.strip().lower().endswith(".toml") or Path(self.target).is_file()


@dataclass
class Served:
    """What :func:`load` built: the pipeline Stage, its spec string and the collection it reads."""

    stage: Any                     # rankstack.pipeline.stage.Stage
    spec: str                      # the served pipeline as an expression
    name: str                      # its name in the experiment file, or "pipeline"
    collection: Any                # rankstack.data.beir.Collection
    experiments: list[Path] = field(default_factory=list)
    source: Path | None = None     # the experiment file, when served from one


def _from_experiment(config: ServeConfig, collection_override: str | None):
    from rankstack.data.beir import Collection
    from rankstack.experiment.runner import NamedPipeline
    from rankstack.pipeline.expression import parse_pipeline
    from rankstack.recipes.experiment import load_experiment
    from rankstack.registry import Context

    spec = load_experiment(config.target)
    name = config.pipeline or spec.baseline
    if name not in spec.pipelines:
        raise InputError(f"--pipeline {name!r} is not a pipeline of {config.target}",
                         fix=f"choose one of {', '.join(spec.pipelines)}")
    root = config.data_root or spec.data_root
    if root is not None and config.data_root is None and not Path(root).is_absolute():
        root = str(Path(config.target).parent / root)
    collection = Collection(collection_override or spec.collection, data_root=root)
    context = Context(collection=collection, cache_dir=config.cache_dir, seed=spec.seed)
    definitions: dict[str, Any] = {}
    for other, expr in spec.pipelines.items():
        if other == name:
            break
        # earlier pipelines are built only if the served one names them (as the experiment engine does)
        definitions[other] = NamedPipeline(other, expr, context, definitions, spec.depth)
    expr = spec.pipelines[name]
    try:
        stage = parse_pipeline(expr, context, definitions)
    except InputError as exc:
        raise InputError(f"pipeline {name} = {expr!r}: {exc.problem}", path=config.target, fix=exc.fix) from None
    return Served(stage, expr, name, collection, list(config.experiments), Path(config.target))


def load(config: ServeConfig, *, warmup: bool | None = None) -> Served:
    """Build the served pipeline once (and warm it up with one query unless ``warmup`` is False)."""
    from rankstack.data.beir import Collection
    from rankstack.pipeline.expression import parse_pipeline
    from rankstack.registry import Context

    if config.is_experiment_file:
        served = _from_experiment(config, config.collection)
    else:
        if config.collection is None:
            raise InputError("--collection is required to serve a pipeline expression",
                             fix="add --collection scifact (a BEIR folder or a name under the data root)")
        collection = Collection(config.collection, data_root=config.data_root)
        context = Context(collection=collection, cache_dir=config.cache_dir)
        stage = parse_pipeline(config.target, context)
        served = Served(stage, config.target.strip(), "pipeline", collection, list(config.experiments))
    served.collection.documents()  # the texts of every hit come from here: load them now
    if config.warmup if warmup is None else warmup:
        _warm_up(served)
    return served


def _warm_up(served: Served) -> None:
    """One real query through the whole pipeline: builds indexes, loads models, fills caches."""
    from rankstack.types import Queries

    try:
        queries = served.collection.queries(None)
        text = queries.texts[0] if len(queries) else "warm up"
    except InputError:
        text = "warm up"
    log.info("warming up %s with %r", served.spec, text)
    served.stage(Queries(("warmup",), (text,)))
