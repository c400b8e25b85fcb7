"""Workers: the code that runs one unit of batch work, identically in-process (local) and in Ray actors.

Why one class for both executors: the local and the Ray path then share every line that touches a
model, so "same spec, same results" is true by construction, not by parallel maintenance. A worker
builds its model ONCE from a *spec* (a registry name + arguments, a model folder, or an importable
``"module:callable"`` factory) when it starts; models are never pickled (they can be hundreds of MB
and are not a safe interchange format).

A work item is one model batch with a fixed composition chosen by the driver (``bid``: batch id,
``keys``: the document or pair ids it holds). A failing batch is retried ``max_retries`` times in
the worker and then raised as :class:`BatchFailed`, which names the batch and its ids.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from rankstack.errors import InputError, RankstackError

__all__ = ["BatchFailed", "EncodeWorker", "PairWorker", "EvalWorker", "build_from_spec", "with_retries"]

log = logging.getLogger(__name__)


class BatchFailed(RankstackError):
    """A batch kept failing after its retries; the message names the batch and (some of) its ids."""

    def __init__(self, what: str, bid: int, keys: Sequence[str], attempts: int, cause: str) -> None:
        shown = ", ".join(map(str, list(keys)[:5])) + (f", ... ({len(keys)} in all)" if len(keys) > 5 else "")
        self.bid, self.keys, self.attempts, self.cause = bid, list(map(str, keys)), attempts, cause
        super().__init__(f"{what}: batch {bid} (ids {shown}) failed after {attempts} attempt(s): {cause}")

    def __reduce__(self):  # keep the fields when Ray ships the exception back to the driver
        return (_rebuild_batch_failed, (str(self), self.bid, self.keys, self.attempts, self.cause))


def _rebuild_batch_failed(text: str, bid: int, keys: list[str], attempts: int, cause: str) -> BatchFailed:
    err = BatchFailed.__new__(BatchFailed)
    RankstackError.__init__(err, text)
    err.bid, err.keys, err.attempts, err.cause = bid, keys, attempts, cause
    return err


def with_retries(fn: Callable[[], Any], what: str, bid: int, keys: Sequence[str], max_retries: int) -> Any:
    """``fn()``, retried up to ``max_retries`` times; then :class:`BatchFailed` naming the batch."""
    last: BaseException | None = None
    for attempt in range(max_retries + 1):
        try:
            return fn()
        except InputError:
            raise  # bad input does not get better by retrying
        except Exception as exc:  # noqa: BLE001 - any backend failure is retried, then named
            last = exc
            log.warning("%s: batch %d failed (attempt %d of %d): %s", what, bid, attempt + 1, max_retries + 1, exc)
    raise BatchFailed(what, bid, keys, max_retries + 1, f"{type(last).__name__}: {last}")


def build_from_spec(spec: str | Mapping[str, Any], kind: str) -> Any:
    """A component from ``"name"``, ``{"name", "args"}`` (registry) or ``{"factory": "mod:fn", "args"}``.

    The ``factory`` form lets users run their own scorer class on a cluster without registering it.
    """
    if isinstance(spec, Mapping) and "factory" in spec:
        target = str(spec["factory"])
        module, _, attr = target.partition(":")
        if not module or not attr:
            raise InputError(f"factory {target!r} is not 'module:callable'", fix="e.g. 'mypkg.scorers:MyScorer'")
        try:
            fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise InputError(f"cannot import factory {target!r} ({exc})",
                             fix="make the module importable on every node (PYTHONPATH or an installed package)") \
                from None
        return fn(**dict(spec.get("args") or {}))
    if kind == "encoder":
        from rankstack.encode.base import load_encoder

        if isinstance(spec, Mapping) and "options" in spec:  # {"encoder": spec, "options": {...}}
            return load_encoder(spec["encoder"], **dict(spec["options"]))
        return load_encoder(spec)
    from rankstack.registry import build

    return build(spec, kind)


def _rows(batch: Mapping[str, Any]) -> range:
    return range(len(batch["bid"]))


class EncodeWorker:
    """Encodes fixed batches of texts; returns raw (un-normalised) vectors as float32 bytes.

    The driver normalises the assembled matrix once, exactly as :meth:`Encoder.encode` does, so the
    result equals ``encoder.encode(texts)`` bit for bit when the batches are the same.
    """

    def __init__(self, spec: Any, max_retries: int = 2) -> None:
        self.encoder = build_from_spec(spec, "encoder")
        self.max_retries = max_retries

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        with self.encoder._session():
            vecs = np.asarray(self.encoder._encode_batch(list(texts)), dtype=np.float32)
        if vecs.shape != (len(texts), self.encoder.dim):
            raise RuntimeError(f"encoder returned shape {vecs.shape} for {len(texts)} texts")
        return vecs

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        out = []
        for i in _rows(batch):
            texts, keys, bid = list(batch["texts"][i]), list(batch["keys"][i]), int(batch["bid"][i])
            vecs = with_retries(lambda: self.encode_batch(texts), "encode", bid, keys, self.max_retries)
            out.append(np.ascontiguousarray(vecs).tobytes())
        return {"bid": np.asarray(batch["bid"]), "data": np.array(out, dtype=object)}


class PairWorker:
    """Scores fixed batches of (query, document) pairs with any PairScorer built from its spec."""

    def __init__(self, spec: Any, max_retries: int = 2) -> None:
        self.scorer = build_from_spec(spec, "reranker")
        self.max_retries = max_retries

    def score_batch(self, queries: list[str], docs: list[str]) -> np.ndarray:
        scores = np.asarray(self.scorer.score_pairs(queries, docs), dtype=np.float64).reshape(-1)
        if len(scores) != len(queries):
            raise RuntimeError(f"score_pairs returned {len(scores)} scores for {len(queries)} pairs")
        if not np.all(np.isfinite(scores)):
            raise RuntimeError("score_pairs produced non-finite scores")
        return scores

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        out = []
        for i in _rows(batch):
            q, d, keys, bid = list(batch["q"][i]), list(batch["d"][i]), list(batch["keys"][i]), int(batch["bid"][i])
            scores = with_retries(lambda: self.score_batch(q, d), "score pairs", bid, keys, self.max_retries)
            out.append(np.ascontiguousarray(scores).tobytes())
        return {"bid": np.asarray(batch["bid"]), "data": np.array(out, dtype=object)}


class EvalWorker:
    """Evaluates run files against one qrels set (shipped once per worker); returns the Evaluation."""

    def __init__(self, qrels: Any, measures: Sequence[str], missing: str = "skip", max_retries: int = 0) -> None:
        self.qrels, self.measures, self.missing, self.max_retries = qrels, list(measures), missing, max_retries

    def evaluate(self, path: str) -> bytes:
        import pickle

        from rankstack.data import read_run
        from rankstack.evaluate import evaluate

        # an Evaluation is plain data made by this process: pickled only between our own processes
        return pickle.dumps(evaluate(read_run(path), self.qrels, self.measures, missing=self.missing))

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        out = []
        for i in _rows(batch):
            path, bid = str(batch["keys"][i][0]), int(batch["bid"][i])
            out.append(with_retries(lambda: self.evaluate(path), "evaluate", bid, [path], self.max_retries))
        return {"bid": np.asarray(batch["bid"]), "data": np.array(out, dtype=object)}
