"""A short schemathesis run over every operation of the OpenAPI schema (derandomized, bounded examples,
positive and negative data): no server error, ever. The run against a live server over all phases is
``benchmarks/bench_load.py --contract``.

Why not schemathesis' pytest plugin: its ``from_fixture`` does not run under this pytest; hypothesis
drives each operation's strategy directly instead. The app serves a tiny collection through BM25 and a tiny random-init cross-encoder, so /v1/rerank
computes instead of refusing.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")

from hypothesis import HealthCheck, settings

from rankstack.service.app import create_app
from tests.fixtures.beir import write_beir
from tests.fixtures.models import make_tiny_bert
from tests.unit.service._support import state_for

EXAMPLES = 25


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory, one_torch_thread):
    root = tmp_path_factory.mktemp("contract")
    coll = write_beir(root / "tiny")
    model = make_tiny_bert(root / "model")
    app = create_app(state_for(coll, f"bm25 % 5 >> reranker(model='{model}', batch_size=8)"))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def _operations(schema) -> list:
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_server_errors(api_schema, mode):
    from hypothesis import given
    from hypothesis.errors import Unsatisfiable

    generation = schemathesis.GenerationMode(mode)
    operations = _operations(api_schema)
    assert {op.label for op in operations} >= {"GET /healthz", "POST /v1/search", "POST /v1/rerank",
                                               "POST /v1/evaluate"}
    seen: dict[int, int] = {}
    impossible: list[str] = []
    for op in operations:
        @given(case=op.as_strategy(generation_mode=generation))
        @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case) -> None:
            response = case.call()
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            assert response.status_code < 500, f"{op.label}: {response.status_code} {response.text[:300]}"
            assert "Traceback" not in response.text
            case.validate_response(response, checks=[schemathesis.checks.not_a_server_error])
            if response.status_code >= 400:
                assert set(response.json()) == {"error"}, response.text[:300]

        try:
            check()
        except Unsatisfiable:  # no invalid input exists (e.g. GET /healthz takes none)
            impossible.append(op.label)
    assert not [label for label in impossible if label.startswith("POST")]
    assert seen and max(seen) < 500
    if mode == "negative":
        assert any(400 <= status < 500 for status in seen)  # the bounds and types were really tested
