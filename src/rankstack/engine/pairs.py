"""Run a PairScorer's scoring through an executor (Ray or local) without changing its results."""

from __future__ import annotations

from typing import Any

from rankstack.errors import InputError

__all__ = ["attach_pair_executor", "reranker_spec"]


def reranker_spec(model: str, max_length: int | None = None, batch_size: int = 16, precision: str = "auto",
                  threads: int | None = 1) -> dict[str, Any]:
    """The registry spec a worker builds the cross-encoder from (depth/combine stay on the driver)."""
    args: dict[str, Any] = {"model": str(model), "batch_size": batch_size, "precision": precision}
    if max_length is not None:
        args["max_length"] = max_length
    if threads is not None:
        args["threads"] = threads
    return {"name": "reranker", "args": args}


def attach_pair_executor(scorer: Any, spec: Any, executor: Any) -> Any:
    """Make ``scorer.score`` ship its (unchanged) batches to ``executor`` workers built from ``spec``.

    The driver keeps batching, depth, combination and ordering; workers only run ``score_pairs``.
    """
    if not hasattr(scorer, "score_pairs"):
        raise InputError(f"{type(scorer).__name__} is not a PairScorer", fix="attach executors to rerankers only")
    scorer.executor, scorer.executor_spec = executor, spec
    return scorer
