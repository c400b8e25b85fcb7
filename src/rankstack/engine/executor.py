"""Executors: run batch work (corpus encoding, pair scoring, evaluation of many runs) locally or on Ray.

Why the driver fixes the batches: a transformer's fp32 output for a text depends on what it is
padded with, so the same text in a differently composed batch can differ in the last bits. The
driver therefore cuts the work into batches exactly as the local code does (length-sorted, the same
batch size: :func:`rankstack.encode.base.length_sorted_batches`, ``PairScorer.score``), ships each
batch whole to a worker and reassembles results by batch id. Local and Ray results are then equal
bit for bit (verified by tests/unit/engine and the scifact acceptance runs), and an embedding cache
written by one is valid for the other.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from rankstack.engine.workers import EncodeWorker, EvalWorker, PairWorker
from rankstack.errors import InputError

__all__ = ["ExecutionOptions", "Executor", "LocalExecutor", "get_executor", "EXECUTIONS"]

log = logging.getLogger(__name__)

EXECUTIONS = ("local", "ray")


@dataclass(frozen=True)
class ExecutionOptions:
    """Where batch work runs. ``workers``: Ray actors (each holds one model, ``cpus_per_worker``
    CPUs and that many torch threads); ``max_retries``: attempts per failing batch beyond the first."""

    execution: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    workers: int = 2
    cpus_per_worker: float = 1.0
    max_retries: int = 2
    object_store_mb: int = 256
    progress: bool = True

    def __post_init__(self) -> None:
        if self.execution not in EXECUTIONS:
            raise InputError(f"unknown execution {self.execution!r}", fix=f"choose one of {', '.join(EXECUTIONS)}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise InputError(f"workers must be a positive integer, got {self.workers!r}")
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise InputError(f"max_retries must be a non-negative integer, got {self.max_retries!r}")
        if not self.cpus_per_worker > 0:
            raise InputError(f"cpus_per_worker must be positive, got {self.cpus_per_worker!r}")


class Executor:
    """Runs fixed batches through workers; subclasses implement :meth:`_run` (local or Ray)."""

    name = "base"

    def __init__(self, options: ExecutionOptions | None = None) -> None:
        self.options = options or ExecutionOptions()
        self.last_stats: dict[str, Any] = {}

    def _run(self, worker_cls: type, args: tuple, items: list[dict[str, Any]], what: str) -> list[bytes]:
        raise NotImplementedError  # pragma: no cover

    def close(self) -> None:
        """Release resources this executor started (a Ray cluster it joined is left running)."""

    # -- corpus encoding ----------------------------------------------------------------------
    def encode(self, encoder: Any, texts: Sequence[str], ids: Sequence[str] | None = None,
               batch_size: int = 32, options: Mapping[str, Any] | None = None) -> np.ndarray:
        """Unit vectors ``[n, d]`` of ``texts``, equal to ``load_encoder(encoder, **options).encode(texts)``.

        ``encoder`` is a spec (name, model folder, ``{"name", "args"}`` or ``{"factory", ...}``), never a
        loaded model: each worker builds its own copy once.
        """
        from rankstack.encode.base import l2_normalise, length_sorted_batches

        texts = list(texts)
        ids = [str(i) for i in (ids if ids is not None else range(len(texts)))]
        if len(ids) != len(texts):
            raise InputError(f"{len(ids)} ids for {len(texts)} texts")
        batches = length_sorted_batches(texts, batch_size)
        spec = {"encoder": encoder, "options": {**dict(options or {}), "batch_size": batch_size}}
        items = [{"bid": b, "texts": [texts[i] for i in idx], "keys": [ids[i] for i in idx]}
                 for b, idx in enumerate(batches)]
        results = self._run(EncodeWorker, (spec, self.options.max_retries), items, "encode")
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        dim = len(results[0]) // 4 // len(batches[0])
        out = np.zeros((len(texts), dim), dtype=np.float32)
        for idx, raw in zip(batches, results):
            out[idx] = np.frombuffer(raw, dtype=np.float32).reshape(len(idx), dim)
        return l2_normalise(out)

    # -- pair scoring ---------------------------------------------------------------------------
    def score_batches(self, scorer: Any, query_texts: Sequence[str], doc_texts: Sequence[str],
                      batches: Sequence[np.ndarray], keys: Sequence[str] | None = None) -> np.ndarray:
        """Scores of aligned pairs, computed batch by batch exactly as given (``PairScorer.score`` order)."""
        n = len(query_texts)
        if len(doc_texts) != n:
            raise InputError(f"{n} query texts but {len(doc_texts)} document texts")
        keys = [str(k) for k in (keys if keys is not None else range(n))]
        items = [{"bid": b, "q": [query_texts[i] for i in idx], "d": [doc_texts[i] for i in idx],
                  "keys": [keys[i] for i in idx]} for b, idx in enumerate(batches)]
        results = self._run(PairWorker, (scorer, self.options.max_retries), items, "score pairs")
        out = np.empty(n, dtype=np.float64)
        for idx, raw in zip(batches, results):
            out[np.asarray(idx)] = np.frombuffer(raw, dtype=np.float64)
        return out

    def score_pairs(self, scorer: Any, query_texts: Sequence[str], doc_texts: Sequence[str],
                    batch_size: int = 16, keys: Sequence[str] | None = None) -> np.ndarray:
        """Scores of aligned pairs in batches of ``batch_size`` sorted by character length (teacher labels)."""
        lengths = np.fromiter((len(q) + len(d) for q, d in zip(query_texts, doc_texts)), dtype=np.int64,
                              count=len(query_texts))
        order = np.argsort(-lengths, kind="stable")
        batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
        return self.score_batches(scorer, list(query_texts), list(doc_texts), batches, keys)

    # -- evaluation of many runs ------------------------------------------------------------------
    def evaluate_runs(self, paths: Sequence[str], qrels: Any, measures: Sequence[str],
                      missing: str = "skip") -> list[Any]:
        """One :class:`~rankstack.evaluate.Evaluation` per run file, in the order given."""
        items = [{"bid": b, "keys": [str(p)]} for b, p in enumerate(paths)]
        results = self._run(EvalWorker, (qrels, list(measures), missing), items, "evaluate")
        return [pickle.loads(raw) for raw in results]  # noqa: S301 - made by our own worker processes


class LocalExecutor(Executor):
    """In-process: one worker, batches in order, a progress bar."""

    name = "local"

    def _run(self, worker_cls: type, args: tuple, items: list[dict[str, Any]], what: str) -> list[bytes]:
        from tqdm.auto import tqdm

        if not items:
            return []
        worker = worker_cls(*args)
        out: list[bytes] = []
        for item in tqdm(items, desc=f"{what} (local)", unit="batch", disable=not self.options.progress):
            res = worker({k: [v] for k, v in item.items()})
            out.append(res["data"][0])
        return out


def get_executor(options: ExecutionOptions | str | None = None, **kwargs: Any) -> Executor:
    """An executor for ``options`` (or ``execution="local"|"ray"`` plus ExecutionOptions fields)."""
    if isinstance(options, str) or options is None:
        options = ExecutionOptions(execution=options or "local", **kwargs)
    if options.execution == "ray":
        from rankstack.engine.ray_backend import RayExecutor

        return RayExecutor(options)
    return LocalExecutor(options)
