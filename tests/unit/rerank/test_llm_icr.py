"""ICR with the fake LM: query-to-document attention per document, calibrated by the "N/A" query."""

from __future__ import annotations

import pytest

from rankstack.errors import InputError
from rankstack.llm.fake import FakeLM
from rankstack.llm.http import OpenAIBackend
from rankstack.rerank.llm import ICRReranker
from rankstack.rerank.llm.icr import icr_scores
from rankstack.rerank.llm.prompts import icr_segments
from rankstack.types import Queries, Run

DOCS = {"a": "cats purr", "b": "dogs bark", "c": "lions roar"}
RUN = Run(["q"] * 3, list(DOCS), [3.0, 2.0, 1.0], queries=Queries(("q",), ("dogs bark",)))


def test_segments_put_documents_between_head_and_query():
    segs = icr_segments("query", ["x", "y"])
    assert segs[1] == "[1] x\n" and segs[2] == "[2] y\n" and segs[-1] == " query"


def test_aggregation_reads_the_document_segments():
    # head, 3 documents, instruction, query
    assert icr_scores([9, 1, 5, 2, 7, 0], [9, 1, 1, 1, 7, 0], 3).tolist() == [0.0, 4.0, 1.0]


def test_calibration_removes_position_bias():
    # attention = a strong bias to the first document + 1.0 where the query's words appear
    def attention(segments, source):
        query = set(segments[source].split())
        bias = [0.0, 5.0, 0.0, 0.0, 0.0, 0.0]
        return [b + (1.0 if query & set(s.strip("\n").split()) else 0.0) for b, s in zip(bias, segments)]

    calls = []
    lm = FakeLM(attention=lambda segs, src: calls.append(segs[src]) or attention(segs, src))
    out = ICRReranker(lm, DOCS, depth=None)(RUN)
    assert [str(d) for d in out.docids][0] == "b"
    assert calls == [" dogs bark", " N/A"]
    raw = ICRReranker(FakeLM(attention=attention), DOCS, depth=None, calibrate=False)(RUN)
    assert [str(d) for d in raw.docids][0] == "a"  # uncalibrated, the position bias wins
    assert out.metadata["llm"]["total"]["calls"] == 2


def test_attention_over_http_is_not_supported():
    backend = OpenAIBackend("http://127.0.0.1:9", retries=0)
    with pytest.raises(InputError, match="not supported.*attention"):
        ICRReranker(backend, DOCS)(RUN)
    backend.close()
