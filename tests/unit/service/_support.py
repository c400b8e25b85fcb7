"""Helpers for the service tests: a served tiny collection, a blocking stage, error-body checks."""

from __future__ import annotations

import threading
from pathlib import Path

from rankstack.recipes.serve import ServeConfig
from rankstack.service.state import ServiceState
from rankstack.types import Queries, Run


def state_for(collection: Path, target: str = "bm25", **config) -> ServiceState:
    return ServiceState.from_config(ServeConfig(target=target, collection=str(collection), cache_dir=None, **config))


def assert_error(response, status: int, field: str | None) -> dict:
    """The uniform error body, naming ``field``, and no traceback text anywhere in it."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"field", "message", "fix", "request_id"}
    assert body["error"]["field"] == field, body
    assert body["error"]["message"]
    assert "Traceback" not in response.text and 'File "' not in response.text
    return body["error"]


class BlockingStage:
    """A first stage that waits on an event for the query 'block' (to hold a worker deterministically)."""

    name = "blocking"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    def __call__(self, queries: Queries) -> Run:
        if queries.texts[0] == "block":
            self.entered.set()
            self.release.wait(30)
        return Run.from_dict({queries.qids[0]: {"d1": 1.0}}).with_queries(queries)
