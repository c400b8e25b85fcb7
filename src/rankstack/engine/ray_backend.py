"""Ray execution: Ray Data ``map_batches`` over an actor pool, each actor holding one model.

Why Ray Data with actors (Moritz et al., "Ray: A Distributed Framework for Emerging AI
Applications", OSDI 2018): the model is built once per actor from its spec (constructor), batches
stream through the pool with back-pressure, and the same code joins a multi-node cluster
(``ray_address``) or starts a local one. Each dataset row is one *whole* model batch chosen by the
driver, so batch composition (and so every fp32 bit) is the local path's.

Failures: a Python error in a batch is retried in the actor (``max_retries``), then raised as
``BatchFailed`` naming the batch and its ids; a crashed actor process is restarted by Ray
(``max_restarts``) and its batch re-run (``max_task_retries``).
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from rankstack.engine.executor import ExecutionOptions, Executor
from rankstack.engine.workers import BatchFailed, _rebuild_batch_failed
from rankstack.errors import MissingDependencyError, RankstackError

__all__ = ["RayExecutor", "ensure_ray"]

log = logging.getLogger(__name__)

NICENESS_ENV = "RAY_worker_niceness"


def _ray():
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("ray", "ray", "Ray execution") from None
    return ray


def ensure_ray(options: ExecutionOptions) -> bool:
    """Join ``options.ray_address`` or start a small local cluster; True if this call started it.

    A local cluster gets ``workers * cpus_per_worker`` CPUs, no dashboard, no worker logs on the
    driver's console and a small object store (batches are small; the default takes 30% of RAM).
    """
    ray = _ray()
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "logging_level": logging.WARNING, "ignore_reinit_error": True}
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    # workers must import rankstack (and user factories) exactly as the driver does
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    kwargs["runtime_env"] = {"env_vars": {"PYTHONPATH": path, "TOKENIZERS_PARALLELISM": "false"}}
    if options.ray_address:
        kwargs["address"] = options.ray_address
    else:
        kwargs["num_cpus"] = max(1, int(round(options.workers * options.cpus_per_worker)))
        kwargs["object_store_memory"] = int(options.object_store_mb) * 1024 * 1024
    # Ray starts workers at niceness 15 by default: on a shared machine they then get a fraction of the
    # CPU the local path gets (seen: 1-2% per actor at load 30, vs the driver's fair share), so a local
    # cluster's workers run at normal priority. Set only while Ray spawns its processes, then restored.
    old = os.environ.get(NICENESS_ENV)
    os.environ[NICENESS_ENV] = os.environ.get("RANKSTACK_RAY_WORKER_NICENESS", "0")
    try:
        ray.init(**kwargs)
    finally:
        if old is None:
            os.environ.pop(NICENESS_ENV, None)
        else:
            os.environ[NICENESS_ENV] = old
    return True


def _find_batch_failure(exc: BaseException) -> BaseException | None:
    seen = set()
    stack = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, BatchFailed):
            return e
        stack += [getattr(e, "cause", None), e.__cause__, e.__context__]
    return None


class RayExecutor(Executor):
    """Batches through a Ray Data actor pool of ``options.workers`` actors."""

    name = "ray"

    def __init__(self, options: ExecutionOptions | None = None) -> None:
        super().__init__(options or ExecutionOptions(execution="ray"))
        self._started = ensure_ray(self.options)

    def close(self) -> None:
        if self._started:
            _ray().shutdown()
            self._started = False

    def _run(self, worker_cls: type, args: tuple, items: list[dict[str, Any]], what: str) -> list[bytes]:
        import ray.data
        from tqdm.auto import tqdm

        if not items:
            return []
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # one bar, the driver's, below
        ctx.execution_options.preserve_order = True
        opts = self.options
        # up to ~200 blocks: results (and the progress bar) arrive block by block, in order
        ds = ray.data.from_items(items, override_num_blocks=min(len(items), max(opts.workers * 16, 200)))
        mapped = ds.map_batches(worker_cls, fn_constructor_args=args, batch_size=1, batch_format="numpy",
                                concurrency=opts.workers, num_cpus=opts.cpus_per_worker,
                                ray_remote_args_fn=lambda: {"max_restarts": opts.max_retries,
                                                            "max_task_retries": opts.max_retries})
        out: dict[int, bytes] = {}
        try:
            with tqdm(total=len(items), desc=f"{what} (ray, {opts.workers} workers)", unit="batch",
                      disable=not opts.progress) as bar:
                for batch in mapped.iter_batches(batch_size=None, batch_format="numpy"):
                    for bid, data in zip(batch["bid"].tolist(), batch["data"]):
                        out[int(bid)] = data
                        bar.update(1)
        except RankstackError:
            raise
        except Exception as exc:  # Ray wraps worker errors; surface ours by name, one line
            failed = _find_batch_failure(exc)
            if failed is not None:
                raise failed from None
            found = re.search(r"BatchFailed: (.*)", str(exc))
            if found:  # Ray re-wraps the worker's exception: rebuild ours from its one-line message
                bid = re.search(r"batch (\d+)", found.group(1))
                raise _rebuild_batch_failed(found.group(1).strip(), int(bid.group(1)) if bid else -1, [],
                                            self.options.max_retries + 1, found.group(1)) from None
            text = str(exc).strip().splitlines()
            raise RankstackError(f"{what} on Ray failed: {text[-1] if text else type(exc).__name__}") from exc
        missing = [i for i in range(len(items)) if i not in out]
        if missing:
            raise RankstackError(f"{what} on Ray returned no result for {len(missing)} batch(es), e.g. {missing[0]}")
        return [out[i] for i in range(len(items))]
