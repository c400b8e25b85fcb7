"""ServiceState without HTTP: the operations the API and the workbench share."""

from __future__ import annotations

import pytest

from rankstack.errors import InputError
from rankstack.service.errors import FieldError
from rankstack.service.state import Candidate, Hit, ServiceState, find_reranker, parse_run_text
from tests.unit.service._support import state_for


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> ServiceState:
    from tests.fixtures.beir import write_beir

    return state_for(write_beir(tmp_path_factory.mktemp("state") / "tiny"))


def test_search_returns_hits_and_document_reads_texts(state):
    hits = state.search("loyal dogs bark", 2)
    assert isinstance(hits[0], Hit) and hits[0].docid == "d2" and hits[0].rank == 1
    assert state.document("d2") == ("Dogs", "Dogs are loyal domesticated canines that bark.")
    assert state.pipeline_spec == "bm25" and state.collection.name == "tiny" and state.experiments == []


def test_a_query_matching_nothing_has_no_hits(state):
    assert state.search("zebra xylophone", 5) == []


@pytest.mark.parametrize("query,k,field", [("", 3, "query"), (" \t", 3, "query"), ("x" * 5000, 3, "query"),
                                           (None, 3, "query"), ("cats", 0, "k"), ("cats", True, "k"),
                                           ("cats", 10 ** 9, "k"), ("cats", "3", "k")])
def test_bad_search_input_is_a_field_error(state, query, k, field):
    with pytest.raises(FieldError) as info:
        state.search(query, k)
    assert info.value.field == field and isinstance(info.value, InputError)


def test_unknown_document_and_missing_reranker(state):
    with pytest.raises(FieldError) as info:
        state.document("nope")
    assert info.value.status == 404
    assert find_reranker(state.stage) is None
    with pytest.raises(FieldError, match="does not end with a reranker"):
        state.rerank("cats", [Candidate(id="d1")])


def test_run_text_errors_name_the_line():
    with pytest.raises(FieldError, match="line 2"):
        parse_run_text("q1 Q0 d1 1 1.0 x\nq1 Q0 d2 2 oops x\n")
    with pytest.raises(FieldError, match="empty"):
        parse_run_text("\n")
    assert len(parse_run_text("q1 Q0 d1 1 1.0 x\n")) == 1
