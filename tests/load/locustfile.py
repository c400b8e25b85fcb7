"""Locust users for the search service (``benchmarks/bench_load.py`` and ``tests/load/test_locust.py``).

Closed-loop users (no think time) posting ``/v1/search`` with queries drawn in turn from a list, so
the offered load is set by the number of users. Settings come from the environment (locust passes
no arguments to user classes):

* ``RANKSTACK_LOAD_QUERIES`` — a JSON file holding a list of query texts (default: a few built-ins);
* ``RANKSTACK_LOAD_K`` — documents per search (default 10);
* ``RANKSTACK_LOAD_MAX_REQUESTS`` — stop the whole run after this many requests (default: no limit).

A response other than 200 is a failure named by its status (``HTTP 503``), so a run's failures table
says exactly which statuses occurred; overload runs expect only ``HTTP 503`` there.
"""

from __future__ import annotations

import itertools
import json
import os

from locust import HttpUser, constant, events, task

DEFAULT_QUERIES = ["why do cats purr", "loyal dogs bark", "wild lions and tigers", "talking parrots",
                   "goldfish in a bowl of water", "small domesticated felines"]


def _queries() -> list[str]:
    path = os.environ.get("RANKSTACK_LOAD_QUERIES")
    if not path:
        return DEFAULT_QUERIES
    with open(path, encoding="utf-8") as fh:
        queries = json.load(fh)
    if not isinstance(queries, list) or not queries or not all(isinstance(q, str) for q in queries):
        raise SystemExit(f"{path}: expected a JSON list of query strings")
    return queries


QUERIES = _queries()
K = int(os.environ.get("RANKSTACK_LOAD_K", "10"))
MAX_REQUESTS = int(os.environ.get("RANKSTACK_LOAD_MAX_REQUESTS", "0"))
_next = itertools.count()


@events.request.add_listener
def _stop_after_max_requests(**_kwargs) -> None:
    env = getattr(_stop_after_max_requests, "environment", None)
    if MAX_REQUESTS and env is not None and env.runner is not None \
            and env.runner.stats.total.num_requests >= MAX_REQUESTS:
        env.runner.quit()


@events.init.add_listener
def _keep_environment(environment, **_kwargs) -> None:
    _stop_after_max_requests.environment = environment


class SearchUser(HttpUser):
    wait_time = constant(0)

    @task
    def search(self) -> None:
        query = QUERIES[next(_next) % len(QUERIES)]
        with self.client.post("/v1/search", json={"query": query, "k": K}, name="/v1/search",
                              catch_response=True) as response:
            if response.status_code == 200:
                response.success()
            else:
                response.failure(f"HTTP {response.status_code}")
