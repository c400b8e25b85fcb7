"""Load shedding and timeouts, made deterministic: a pool of one worker and no queue, held by a blocked
request; the next request is shed with 503 + Retry-After at once, and the service recovers after."""

from __future__ import annotations

import asyncio
import time

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from rankstack.data.beir import Collection
from rankstack.service.app import create_app
from rankstack.service.errors import Overloaded, TimedOut
from rankstack.service.pool import BoundedPool
from rankstack.service.state import ServiceState
from tests.fixtures.beir import write_beir
from tests.unit.service._support import BlockingStage, assert_error


async def _wait_for(event, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not event.is_set():
        if time.monotonic() > deadline:
            raise AssertionError("the blocked request never reached its worker")
        await asyncio.sleep(0.01)


def test_full_pool_sheds_with_503_then_recovers(tmp_path):
    stage = BlockingStage()
    state = ServiceState(stage, "blocking", Collection(write_beir(tmp_path / "tiny")))
    app = create_app(state, workers=1, queue=0, retry_after=2)

    async def scenario():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            held = asyncio.create_task(client.post("/v1/search", json={"query": "block", "k": 1}))
            await _wait_for(stage.entered)
            shed = [await client.post("/v1/search", json={"query": "cats", "k": 1}) for _ in range(3)]
            health = await client.get("/healthz")  # answered outside the pool, even when it is full
            stage.release.set()
            first = await held
            after = await client.post("/v1/search", json={"query": "cats", "k": 1})
            return shed, health, first, after

    shed, health, first, after = asyncio.run(scenario())
    for r in shed:
        assert_error(r, 503, None)
        assert r.headers["retry-after"] == "2"
    assert health.status_code == 200 and health.json()["in_flight"] == 1 and health.json()["shed"] == 3
    assert first.status_code == 200 and first.json()["hits"][0]["docid"] == "d1"
    assert after.status_code == 200
    assert app.state.pool.stats()["in_flight"] == 0


def test_timeout_answers_504_and_keeps_the_slot_until_the_work_ends(tmp_path):
    stage = BlockingStage()
    state = ServiceState(stage, "blocking", Collection(write_beir(tmp_path / "tiny")))
    app = create_app(state, workers=1, queue=0, timeout=0.2)

    async def scenario():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            slow = await client.post("/v1/search", json={"query": "block", "k": 1})
            while_busy = await client.post("/v1/search", json={"query": "cats", "k": 1})
            stage.release.set()
            while app.state.pool.stats()["in_flight"]:
                await asyncio.sleep(0.01)
            return slow, while_busy, await client.post("/v1/search", json={"query": "cats", "k": 1})

    slow, while_busy, after = asyncio.run(scenario())
    assert_error(slow, 504, None)
    assert_error(while_busy, 503, None)  # the timed-out computation still holds the only worker
    assert after.status_code == 200


def test_pool_counts_and_refuses_bad_sizes():
    with pytest.raises(ValueError):
        BoundedPool(0, 1, 1.0)
    pool = BoundedPool(1, 1, 5.0)

    async def scenario():
        import threading

        gate = threading.Event()
        a = asyncio.ensure_future(pool.run(gate.wait, 5))
        b = asyncio.ensure_future(pool.run(lambda: 7))
        await asyncio.sleep(0.05)
        with pytest.raises(Overloaded):
            await pool.run(lambda: 8)
        gate.set()
        return await a, await b

    assert asyncio.run(scenario()) == (True, 7)
    assert pool.stats()["shed"] == 1 and pool.stats()["in_flight"] == 0
    assert issubclass(TimedOut, Exception)
    pool.shutdown()


def test_a_waiting_request_whose_client_left_is_never_computed():
    import threading

    from rankstack.service.errors import ClientGone

    pool = BoundedPool(1, 1, 30.0)
    gate, ran = threading.Event(), []

    async def scenario():
        busy = asyncio.ensure_future(pool.run(gate.wait, 5))
        await asyncio.sleep(0.05)
        left = False

        async def disconnected() -> bool:
            return left

        waiting = asyncio.ensure_future(pool.run(ran.append, "computed", disconnected=disconnected))
        await asyncio.sleep(0.05)
        assert pool.stats()["in_flight"] == 2
        left = True
        with pytest.raises(ClientGone):
            await waiting
        assert pool.stats()["in_flight"] == 1  # its slot was freed before the worker got to it
        gate.set()
        return await busy

    assert asyncio.run(scenario()) is True
    assert ran == [] and pool.stats()["abandoned"] == 1 and pool.stats()["in_flight"] == 0
    pool.shutdown()
