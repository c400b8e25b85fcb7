"""The synthetic-queries JSONL: header, append, torn tails, corrupt lines (one clear InputError each)."""

from __future__ import annotations

import json
import logging

import pytest

from rankstack.errors import InputError
from rankstack.synth.records import (FORMAT, SyntheticQuery, read_synthetic_header, read_synthetic_queries,
                                     repair_torn_tail, write_synthetic_queries)


def rec(i: int, gen: str = "title", score: float | None = None) -> SyntheticQuery:
    return SyntheticQuery(qid=f"q{i}", text=f"query number {i}", doc_id=f"d{i}", generator=gen, prompt_id="p1",
                          seed=0, score=score, extra={"i": i})


def test_round_trip_and_header(tmp_path):
    path = tmp_path / "q.jsonl"
    write_synthetic_queries(path, [rec(0), rec(1, score=-0.5)], generator="title", config={"k": 1})
    write_synthetic_queries(path, [rec(2)])
    lines = path.read_text().splitlines()
    assert json.loads(lines[0]) == {"format": FORMAT, "version": 1, "generator": "title", "config": {"k": 1}}
    assert len(lines) == 4  # one header only
    assert read_synthetic_queries(path) == [rec(0), rec(1, score=-0.5), rec(2)]
    assert read_synthetic_header(path)["config"] == {"k": 1}
    assert rec(0).key == ("d0", "title", "p1", 0)


def test_replace_is_atomic_and_refuses_a_foreign_file(tmp_path):
    path = tmp_path / "q.jsonl"
    write_synthetic_queries(path, [rec(0), rec(1)])
    write_synthetic_queries(path, [rec(5)], append=False)
    assert [r.qid for r in read_synthetic_queries(path)] == ["q5"]
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    with pytest.raises(InputError, match="does not look like a jsonl"):
        write_synthetic_queries(notes, [rec(0)], append=False)
    assert notes.read_text() == "my notes\n"


def test_torn_last_line_is_dropped_with_a_warning_and_repaired(tmp_path, caplog):
    path = tmp_path / "q.jsonl"
    write_synthetic_queries(path, [rec(0), rec(1)])
    with open(path, "a") as fh:
        fh.write('{"qid": "q2", "text": "half a rec')
    with caplog.at_level(logging.WARNING):
        assert [r.qid for r in read_synthetic_queries(path)] == ["q0", "q1"]
    assert "torn last line" in caplog.text and ":4:" in caplog.text
    assert repair_torn_tail(path) is True
    write_synthetic_queries(path, [rec(2)])
    assert [r.qid for r in read_synthetic_queries(path)] == ["q0", "q1", "q2"]


def test_complete_last_line_without_newline_is_kept(tmp_path):
    path = tmp_path / "q.jsonl"
    write_synthetic_queries(path, [rec(0)])
    path.write_text(path.read_text() + rec(1).to_json())  # no final newline, but complete
    assert [r.qid for r in read_synthetic_queries(path)] == ["q0", "q1"]
    write_synthetic_queries(path, [rec(2)])
    assert [r.qid for r in read_synthetic_queries(path)] == ["q0", "q1", "q2"]


@pytest.mark.parametrize("bad, match", [
    ("not json at all", "not valid JSON"),
    ('{"qid": "x", "text": "t", "doc_id": "d", "generator": "g", "prompt_id": "p"}', "lacks field"),
    ('{"qid": "x", "text": "t", "doc_id": "d", "generator": "g", "prompt_id": "p", "seed": "0"}', "'seed' is str"),
    ('{"qid": "x", "text": "t", "doc_id": "d", "generator": "g", "prompt_id": "p", "seed": 0, "oops": 1}',
     "unknown field"),
    ('{"qid": "x", "text": " ", "doc_id": "d", "generator": "g", "prompt_id": "p", "seed": 0}', "empty"),
    ('[1, 2]', "expected a JSON object"),
])
def test_corrupt_line_names_file_and_line(tmp_path, bad, match):
    path = tmp_path / "q.jsonl"
    write_synthetic_queries(path, [rec(0)])
    with open(path, "a") as fh:
        fh.write(bad + "\n" + rec(1).to_json() + "\n")
    with pytest.raises(InputError, match=match) as err:
        read_synthetic_queries(path)
    assert f"{path}:3:" in str(err.value) and "fix:" in str(err.value)


def test_duplicate_qid_bad_header_and_other_generator(tmp_path):
    path = tmp_path / "q.jsonl"
    write_synthetic_queries(path, [rec(0), rec(0)])
    with pytest.raises(InputError, match="duplicate qid 'q0'"):
        read_synthetic_queries(path)
    other = tmp_path / "other.jsonl"
    other.write_text('{"_id": "d1", "text": "a corpus, not queries"}\n')
    with pytest.raises(InputError, match="not a rankstack.synthetic-queries header"):
        read_synthetic_queries(other)
    newer = tmp_path / "newer.jsonl"
    newer.write_text(json.dumps({"format": FORMAT, "version": 99, "generator": "g", "config": {}}) + "\n")
    with pytest.raises(InputError, match="version 99"):
        read_synthetic_queries(newer)
    good = tmp_path / "good.jsonl"
    write_synthetic_queries(good, [rec(0)])
    with pytest.raises(InputError, match="refusing to append 'ict'"):
        write_synthetic_queries(good, [rec(1, gen="ict")])
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(InputError, match="empty"):
        read_synthetic_queries(empty)
