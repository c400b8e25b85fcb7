"""The JSON API over a tiny BEIR collection: results equal the library's own, and every bad request
gets a 4xx JSON error naming the field (never a traceback)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from rankstack.data.beir import Collection
from rankstack.data.trec import format_run
from rankstack.evaluate import evaluate
from rankstack.pipeline.expression import parse_pipeline
from rankstack.registry import Context
from rankstack.service.app import create_app
from rankstack.service.state import MAX_CANDIDATES, MAX_K, MAX_QUERY_CHARS, ServiceState
from rankstack.types import Queries, Run
from tests.fixtures.beir import TINY_QUERIES, write_beir
from tests.fixtures.models import make_tiny_bert
from tests.unit.service._support import assert_error, state_for


@pytest.fixture(scope="module")
def coll(tmp_path_factory) -> Path:
    return write_beir(tmp_path_factory.mktemp("svc") / "tiny")


@pytest.fixture(scope="module")
def bm25_client(coll):
    with TestClient(create_app(state_for(coll)), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def ce_setup(coll, tmp_path_factory, one_torch_thread):
    model = make_tiny_bert(tmp_path_factory.mktemp("svc-bert") / "model")
    spec = f"bm25 % 5 >> reranker(model='{model}', batch_size=4)"
    state = state_for(coll, spec)
    with TestClient(create_app(state), raise_server_exceptions=False) as client:
        yield client, spec, state


def library_run(coll: Path, spec: str, query: str, k: int):
    """What the library itself returns for one query: an independently built pipeline."""
    stage = parse_pipeline(spec, Context(collection=Collection(coll)))
    return stage(Queries(("q",), (query,))).top_k(k)


@pytest.mark.parametrize("k", [1, 3, 10])
def test_search_equals_the_library_run(bm25_client, coll, k):
    for _, text in TINY_QUERIES:
        r = bm25_client.post("/v1/search", json={"query": text, "k": k})
        assert r.status_code == 200, r.text
        body = r.json()
        expected = library_run(coll, "bm25", text, k)
        assert [h["docid"] for h in body["hits"]] == expected.docids.tolist()
        np.testing.assert_allclose([h["score"] for h in body["hits"]], expected.scores, rtol=0, atol=1e-9)
        assert [h["rank"] for h in body["hits"]] == list(range(1, len(expected) + 1))
        assert body["pipeline"] == "bm25" and body["collection"] == "tiny"


def test_search_hits_carry_texts_and_escaped_highlighted_snippets(bm25_client):
    body = bm25_client.post("/v1/search", json={"query": "why do cats purr", "k": 2}).json()
    top = body["hits"][0]
    assert top["docid"] == "d6" and top["title"] == "Purring"
    assert "<mark>cats</mark>" in top["snippet"] and "<mark>purr</mark>" in top["snippet"]
    assert body["hits"][1]["snippet"].startswith("<mark>Cats</mark> are")  # the text's case is kept
    wild = bm25_client.post("/v1/search", json={"query": "feline", "k": 1}).json()["hits"][0]
    assert "<mark>felines</mark>" in wild["snippet"]  # stemmed, as BM25 matches it


def test_cross_encoder_search_and_rerank_equal_the_library(ce_setup, coll):
    client, spec, state = ce_setup
    for _, text in TINY_QUERIES:
        body = client.post("/v1/search", json={"query": text, "k": 4}).json()
        expected = library_run(coll, spec, text, 4)
        assert [h["docid"] for h in body["hits"]] == expected.docids.tolist()
        np.testing.assert_allclose([h["score"] for h in body["hits"]], expected.scores, atol=1e-6)
        # rerank the BM25 candidates by id: the same ranking as the whole pipeline
        first = library_run(coll, "bm25 % 5", text, 5)
        r = client.post("/v1/rerank", json={"query": text, "candidates": [{"id": d} for d in first.docids.tolist()]})
        assert r.status_code == 200, r.text
        got = r.json()
        full = library_run(coll, spec, text, 5)
        assert [h["id"] for h in got["hits"]] == full.docids.tolist()
        np.testing.assert_allclose([h["score"] for h in got["hits"]], full.scores, atol=1e-6)
        assert got["combined"] is False


def test_rerank_texts_and_combined_scores(ce_setup, coll):
    client, spec, state = ce_setup
    docs = Collection(coll).documents()
    texts = [docs["d1"].contents, docs["d4"].contents, "cats purr"]
    r = client.post("/v1/rerank", json={"query": "why do cats purr", "candidates": [{"text": t} for t in texts], "k": 2})
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    expected = state.reranker.score(["why do cats purr"] * 3, texts)
    order = np.argsort(-expected, kind="stable")[:2]
    assert [h["index"] for h in hits] == order.tolist()
    np.testing.assert_allclose([h["score"] for h in hits], expected[order], atol=1e-6)
    assert all(h["id"] is None for h in hits)


def test_rerank_combines_with_first_stage_scores_like_the_pipeline(coll, tmp_path, one_torch_thread):
    model = make_tiny_bert(tmp_path / "m", seed=1)
    spec = f"bm25 % 5 >> reranker(model='{model}', combine='interpolate', alpha=0.5)"
    with TestClient(create_app(state_for(coll, spec))) as client:
        text = "why do cats purr"
        first = library_run(coll, "bm25 % 5", text, 5)
        cands = [{"id": d, "score": s} for d, s in zip(first.docids.tolist(), first.scores.tolist())]
        got = client.post("/v1/rerank", json={"query": text, "candidates": cands}).json()
        full = library_run(coll, spec, text, 5)
        assert got["combined"] is True
        assert [h["id"] for h in got["hits"]] == full.docids.tolist()
        np.testing.assert_allclose([h["score"] for h in got["hits"]], full.scores, atol=1e-6)


def test_evaluate_equals_the_library(bm25_client, coll):
    c = Collection(coll)
    bm25 = parse_pipeline("bm25", Context(collection=c))(c.queries("test"))
    run = Run(bm25.qids, bm25.docids, -bm25.scores, name="reversed")  # a worse run: measures below 1
    measures = ["nDCG@10", "AP", "P@1"]
    r = bm25_client.post("/v1/evaluate", json={"run": format_run(run), "measures": measures, "split": "test"})
    assert r.status_code == 200, r.text
    body = r.json()
    expected = evaluate(run, c.qrels("test"), measures)
    assert body["mean"] == expected.mean and body["per_query"] == expected.per_query  # floats survive JSON
    assert 0 < body["mean"]["nDCG@10"] < 1
    assert body["queries"] == len(expected.queries) and body["split"] == "test"
    default = bm25_client.post("/v1/evaluate", json={"run": format_run(run)}).json()
    assert set(default["mean"]) == {"nDCG@10", "AP", "RR@10", "R@100"}


BAD = [
    ("/v1/search", {"query": "", "k": 3}, 422, "query"),
    ("/v1/search", {"query": "   ", "k": 3}, 422, "query"),
    ("/v1/search", {"query": "cats", "k": 0}, 422, "k"),
    ("/v1/search", {"query": "cats", "k": 10 ** 9}, 422, "k"),
    ("/v1/search", {"query": "cats", "k": MAX_K + 1}, 422, "k"),
    ("/v1/search", {"query": "x" * (1 << 20), "k": 3}, 422, "query"),
    ("/v1/search", {"query": "c" * (MAX_QUERY_CHARS + 1)}, 422, "query"),
    ("/v1/search", {"query": 42}, 422, "query"),
    ("/v1/search", {"query": ["cats"]}, 422, "query"),
    ("/v1/search", {"query": "cats", "k": "3"}, 422, "k"),
    ("/v1/search", {"query": "cats", "k": 2.5}, 422, "k"),
    ("/v1/search", {"query": "cats", "k": True}, 422, "k"),
    ("/v1/search", {"k": 3}, 422, "query"),
    ("/v1/search", {"query": "cats", "qeury": "x"}, 422, "qeury"),
    ("/v1/search", {"query": "cats", "collection": "trec-covid"}, 404, "collection"),
    ("/v1/search", {"query": "ca\ud800ts"}, 422, "query"),
    ("/v1/search", [1, 2], 422, "body"),
    ("/v1/rerank", {"query": "cats", "candidates": [{"id": "d1"}]}, 400, "pipeline"),
    ("/v1/evaluate", {"run": "q1 Q0 d1 1 1.0\n"}, 422, "run"),
    ("/v1/evaluate", {"run": "q1 Q0 d1 1 nan x\n"}, 422, "run"),
    ("/v1/evaluate", {"run": "zz Q0 d1 1 1.0 x\n"}, 422, "run"),
    ("/v1/evaluate", {"run": "q1 Q0 d1 1 1.0 x\n", "measures": ["nDGC@10"]}, 422, "measures"),
    ("/v1/evaluate", {"run": "q1 Q0 d1 1 1.0 x\n", "measures": []}, 422, "measures"),
    ("/v1/evaluate", {"run": "q1 Q0 d1 1 1.0 x\n", "split": "dev"}, 404, "split"),
    ("/v1/evaluate", {"run": "q1 Q0 d1 1 1.0 x\n", "split": "../x"}, 422, "split"),
    ("/v1/evaluate", {"run": 5}, 422, "run"),
    ("/v1/evaluate", {"run": "q1 Q0 d1 1 1.0 x\n", "collection": "nfcorpus"}, 404, "collection"),
]


@pytest.mark.parametrize("path,body,status,field", BAD, ids=[f"{p}-{f}-{i}" for i, (p, _, _, f) in enumerate(BAD)])
def test_bad_requests_name_the_field(bm25_client, path, body, status, field):
    raw = json.dumps(body).encode()
    r = bm25_client.post(path, content=raw, headers={"content-type": "application/json"})
    assert_error(r, status, field)
    assert r.headers["x-request-id"] == r.json()["error"]["request_id"]


RERANK_BAD = [
    ({"query": "cats", "candidates": []}, 422, "candidates"),
    ({"query": "cats", "candidates": [{"id": "d1"}] * (MAX_CANDIDATES + 1)}, 422, "candidates"),
    ({"query": "cats", "candidates": [{"id": "nope"}]}, 404, "candidates[0].id"),
    ({"query": "cats", "candidates": [{"id": "d1"}, {"id": 7}]}, 422, "candidates[1].id"),
    ({"query": "cats", "candidates": [{"id": "d1", "text": "x"}]}, 422, "candidates[0]"),
    ({"query": "cats", "candidates": [{}]}, 422, "candidates[0]"),
    ({"query": "cats", "candidates": [{"id": "d1"}, {"id": "d1"}]}, 422, "candidates[1].id"),
    ({"query": "cats", "candidates": [{"text": "a", "score": "high"}]}, 422, "candidates[0].score"),
    ({"query": "cats", "candidates": [{"id": "d1"}], "k": 0}, 422, "k"),
    ({"query": "", "candidates": [{"id": "d1"}]}, 422, "query"),
    ({"query": "cats", "candidates": {"id": "d1"}}, 422, "candidates"),
]


@pytest.mark.parametrize("body,status,field", RERANK_BAD, ids=[f"{f}-{i}" for i, (_, _, f) in enumerate(RERANK_BAD)])
def test_bad_rerank_requests_name_the_field(ce_setup, body, status, field):
    client, _, _ = ce_setup
    assert_error(client.post("/v1/rerank", json=body), status, field)


def test_malformed_json_unknown_paths_and_methods(bm25_client):
    r = bm25_client.post("/v1/search", content=b'{"query": "cats", ', headers={"content-type": "application/json"})
    assert_error(r, 422, "body")
    assert_error(bm25_client.post("/v1/search"), 422, "body")
    assert_error(bm25_client.get("/v1/nothing-here"), 404, "path")
    assert_error(bm25_client.get("/v1/search"), 405, "method")
    assert_error(bm25_client.get("/v1/documents/nope"), 404, "docid")
    doc = bm25_client.get("/v1/documents/d3").json()
    assert doc == {"docid": "d3", "title": "Felines", "text": "Lions and tigers are large wild felines."}


def test_oversized_bodies_are_refused_before_being_read(coll):
    app = create_app(state_for(coll), max_body_bytes=4096)
    with TestClient(app) as client:
        big = json.dumps({"query": "cats", "k": 3, "pad": "x" * 10000}).encode()
        assert_error(client.post("/v1/search", content=big, headers={"content-type": "application/json"}),
                     413, "body")

        def chunks():  # no Content-Length: the limit applies while reading
            yield b'{"query": "cats", "pad": "'
            for _ in range(10):
                yield b"x" * 1000
            yield b'"}'

        assert_error(client.post("/v1/search", content=chunks(), headers={"content-type": "application/json"}),
                     413, "body")
        assert client.post("/v1/search", json={"query": "cats", "k": 1}).status_code == 200


def test_unexpected_errors_are_500_with_a_request_id_and_no_details(coll, caplog):
    class Broken:
        name = "broken"

        def __call__(self, queries):
            raise RuntimeError("secret internal detail")

    state = ServiceState(Broken(), "broken", Collection(coll))
    with TestClient(create_app(state), raise_server_exceptions=False) as client, \
            caplog.at_level(logging.ERROR, logger="rankstack.service.app"):
        r = client.post("/v1/search", json={"query": "cats"}, headers={"X-Request-ID": "abc-123"})
    err = assert_error(r, 500, None)
    assert err["request_id"] == "abc-123" and r.headers["x-request-id"] == "abc-123"
    assert "secret" not in r.text and "RuntimeError" not in r.text
    assert any("abc-123" in rec.getMessage() and rec.exc_info for rec in caplog.records)


def test_access_log_is_one_json_line_per_request(bm25_client, caplog):
    with caplog.at_level(logging.INFO, logger="rankstack.service.access"):
        bm25_client.post("/v1/search", json={"query": "cats", "k": 1}, headers={"X-Request-ID": "req-1"})
        bm25_client.post("/v1/search", json={"query": "", "k": 1})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "rankstack.service.access"]
    assert [(x["method"], x["path"], x["status"]) for x in lines[-2:]] == [("POST", "/v1/search", 200),
                                                                           ("POST", "/v1/search", 422)]
    assert lines[-2]["request_id"] == "req-1" and isinstance(lines[-2]["ms"], float)


def test_health_and_openapi(bm25_client):
    health = bm25_client.get("/healthz").json()
    assert health["status"] == "ok" and health["pipeline"] == "bm25" and health["collection"] == "tiny"
    schema = bm25_client.get("/openapi.json").json()
    assert {"/healthz", "/v1/search", "/v1/rerank", "/v1/evaluate"} <= set(schema["paths"])
    k = schema["components"]["schemas"]["SearchRequest"]["properties"]["k"]
    assert (k["minimum"], k["maximum"]) == (1, MAX_K)
