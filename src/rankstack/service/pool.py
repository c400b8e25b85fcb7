"""A bounded worker pool: CPU-bound inference in a fixed number of threads, a bounded wait queue,
and load shedding when both are full.

Why bounded: on a 2-core machine a cross-encoder request takes ~0.1-1 s; an unbounded queue lets
latency grow without limit under overload, until every client times out (and the server keeps
computing answers nobody reads). With ``workers + queue`` admission slots, request number
``workers + queue + 1`` is refused at once (503 + Retry-After, "fail fast"), so latency of admitted
requests stays bounded and the server recovers as soon as load drops.

Why threads: torch and bm25s release the GIL in their kernels; one process keeps one copy of the
index and model. Torch's own intra-op threads are set once at start-up (``ServeConfig.torch_threads``).

A request that times out (504) or whose client disconnects while it waits is dropped from the queue
if it has not started; once computing it keeps its slot until it ends (a thread cannot be killed), so
a timed-out burst cannot overbook the workers. Without this, clients that gave up under overload
(locust stopping, browsers closed) left minutes of queued work behind and delayed recovery.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from rankstack.service.errors import ClientGone, Overloaded, TimedOut

__all__ = ["BoundedPool"]

T = TypeVar("T")
POLL_SECONDS = 0.25  # how often a waiting request checks its client and its deadline


def _consume(future: Any) -> None:
    """Retrieve an abandoned job's outcome so asyncio does not log 'exception never retrieved'."""
    if not future.cancelled():
        future.exception()


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
        self.abandoned = 0

    def _release(self, _future: Any = None) -> None:
        with self._lock:
            self.in_flight -= 1
        self._slots.release()

    async def run(self, fn: Callable[..., T], *args: Any,
                  disconnected: Callable[[], Awaitable[bool]] | None = None, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` in a worker; ``disconnected`` (e.g. Starlette's
        ``request.is_disconnected``) is polled while the request waits, and a request whose client has
        gone, or that timed out, is dropped from the queue before it starts computing."""
        if not self._slots.acquire(blocking=False):
            with self._lock:
                self.shed += 1
            raise Overloaded(self.retry_after)
        with self._lock:
            self.in_flight += 1
        abandoned = threading.Event()

        def job() -> T:
            if abandoned.is_set():  # nobody waits for it any more: do not spend a worker on it
                raise ClientGone
            return fn(*args, **kwargs)

        try:
            future = self._executor.submit(job)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(self._release)
        waiter = asyncio.wrap_future(future)
        deadline = time.monotonic() + self.timeout
        while True:
            remaining = deadline - time.monotonic()
            done, _ = await asyncio.wait({waiter}, timeout=max(0.0, min(POLL_SECONDS, remaining)))
            if done:
                return waiter.result()
            gone = disconnected is not None and await disconnected()
            if gone or remaining <= 0:
                abandoned.set()
                future.cancel()  # frees the slot at once if the job has not started
                waiter.add_done_callback(_consume)
                if gone:
                    with self._lock:
                        self.abandoned += 1
                    raise ClientGone
                with self._lock:
                    self.timed_out += 1
                raise TimedOut(self.timeout)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"workers": self.workers, "queue": self.queue, "in_flight": self.in_flight,
                    "shed": self.shed, "timed_out": self.timed_out, "abandoned": self.abandoned}

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
