"""A bounded worker pool: CPU-bound inference in a fixed number of threads, a bounded wait queue,
and load shedding when both are full.

Why bounded: on a 2-core machine a cross-encoder request takes ~0.1-1 s; an unbounded queue lets
latency grow without limit under overload, until every client times out (and the server keeps
computing answers nobody reads). With ``workers + queue`` admission slots, request number
``workers + queue + 1`` is refused at once (503 + Retry-After, "fail fast"), so latency of admitted
requests stays bounded and the server recovers as soon as load drops.

Why threads: torch and bm25s release the GIL in their kernels; one process keeps one copy of the
index and model. Torch's own intra-op threads are set once at start-up (``ServeConfig.torch_threads``).

A request that times out gets 504 but keeps its slot until its computation ends (a thread cannot be
killed), so a timed-out burst cannot overbook the workers.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from rankstack.service.errors import Overloaded, TimedOut

__all__ = ["BoundedPool"]

T = TypeVar("T")


class BoundedPool:
    """``await pool.run(fn, *args)``: runs ``fn`` in a worker thread, or raises Overloaded/TimedOut."""

    def __init__(self, workers: int, queue: int, timeout: float, retry_after: int = 1) -> None:
        if workers < 1 or queue < 0 or timeout <= 0:
            raise ValueError(f"bad pool sizes: workers={workers}, queue={queue}, timeout={timeout}")
        self.workers, self.queue, self.timeout, self.retry_after = workers, queue, float(timeout), retry_after
        self._slots = threading.BoundedSemaphore(workers + queue)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rankstack-worker")
        self._lock = threading.Lock()
        self.in_flight = 0
        self.shed = 0
        self.timed_out = 0

    def _release(self, _future: Any = None) -> None:
        with self._lock:
            self.in_flight -= 1
        self._slots.release()

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if not self._slots.acquire(blocking=False):
            with self._lock:
                self.shed += 1
            raise Overloaded(self.retry_after)
        with self._lock:
            self.in_flight += 1
        try:
            future = self._executor.submit(fn, *args, **kwargs)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(self._release)
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), self.timeout)
        except asyncio.TimeoutError:
            with self._lock:
                self.timed_out += 1
            raise TimedOut(self.timeout) from None

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"workers": self.workers, "queue": self.queue, "in_flight": self.in_flight,
                    "shed": self.shed, "timed_out": self.timed_out}

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
