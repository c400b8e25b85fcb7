"""Execution engine: the same specs run locally or on Ray, with identical results.

``get_executor("ray", workers=2)`` returns an executor whose ``encode``, ``score_pairs`` /
``score_batches`` and ``evaluate_runs`` build each model once per worker from its spec. Library
layers below this one never import it: they accept any object with these methods (duck typing),
e.g. through ``Context.extras["executor"]`` or ``PairScorer.executor``.
"""

from __future__ import annotations

from rankstack._lazy import lazy_getattr

_LAZY = {
    "ExecutionOptions": "rankstack.engine.executor",
    "Executor": "rankstack.engine.executor",
    "LocalExecutor": "rankstack.engine.executor",
    "get_executor": "rankstack.engine.executor",
    "EXECUTIONS": "rankstack.engine.executor",
    "RayExecutor": "rankstack.engine.ray_backend",
    "BatchFailed": "rankstack.engine.workers",
    "attach_pair_executor": "rankstack.engine.pairs",
}
__all__ = sorted(_LAZY)
__getattr__ = lazy_getattr(__name__, _LAZY)
