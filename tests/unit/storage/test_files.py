"""A file output replaces only a file of its own kind; a notes file given as --out survives."""

from __future__ import annotations

import pytest

from rankstack.cli import main
from rankstack.errors import InputError
from rankstack.storage import atomic_write_text


@pytest.mark.parametrize("kind, good, bad", [
    ("trec-run", "q1 Q0 d1 1 2.5 bm25\n", "my notes: q1 was hard\n"),
    ("qrels", "q1 0 d1 1\n", "query-id,corpus-id\n"),
    ("json", '{"a": 1}\n', "not json\n"),
    ("jsonl", '{"qid": "q"}\n', "[1, 2]\n"),
    ("letor", "2 qid:10 1:0.5 # docid = a\n", "label,qid\n"),
    ("per-query-csv", "run,qid,measure,value\nbm25,q1,AP,0.5\n", "name,grade\nann,A\n"),
])
def test_replaces_its_own_kind_and_refuses_others(tmp_path, kind, good, bad):
    own, other, empty = tmp_path / "own", tmp_path / "other", tmp_path / "empty"
    own.write_text(good)
    other.write_text(bad)
    empty.write_text("")
    atomic_write_text(own, good + good, kind=kind)
    atomic_write_text(empty, good, kind=kind)
    atomic_write_text(tmp_path / "new", good, kind=kind)
    assert own.read_text() == good + good and empty.read_text() == good
    with pytest.raises(InputError, match=f"does not look like a {kind} file; refusing to replace it"):
        atomic_write_text(other, good, kind=kind)
    assert other.read_text() == bad


def test_retrieve_out_never_replaces_a_notes_file(tiny_collection, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("four years of notes\n")
    base = ["retrieve", "--collection", str(tiny_collection), "--cache-dir", "none"]
    assert main(base + ["--out", str(notes)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not look like a trec-run file" in err[0]
    assert notes.read_text() == "four years of notes\n"
    run = tmp_path / "bm25.run"
    assert main(base + ["--out", str(run)]) == 0
    assert main(base + ["--out", str(run)]) == 0  # a run file is replaced by a new run
