"""Saves never destroy: non-artefacts, other kinds, inputs and files are refused; the umask applies."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rankstack.errors import InputError
from rankstack.retrieve.bm25 import BM25Retriever
from rankstack.storage import atomic_directory, atomic_write_text, check_output_file, write_manifest
from tests.fixtures.indexes import leftovers, save_index


# refusals ------------------------------------------------------------------------------------------
def test_refuses_a_folder_that_is_not_an_artefact(tmp_path):
    thesis = tmp_path / "out" / "thesis.txt"
    thesis.parent.mkdir()
    thesis.write_text("four years of work")
    for overwrite in (False, True):
        with pytest.raises(InputError, match="is not a rankstack artefact; refusing"):
            save_index(tmp_path / "out", 3, overwrite=overwrite)
    assert thesis.read_text() == "four years of work"
    assert leftovers(tmp_path, "out") == []


def test_refuses_the_current_directory(tmp_path, monkeypatch):
    (tmp_path / "notes.md").write_text("x")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="not a rankstack artefact"):
        save_index(Path("."), 3, overwrite=True)
    assert (tmp_path / "notes.md").exists()


def test_same_kind_needs_overwrite_and_other_kinds_are_refused(tmp_path):
    save_index(tmp_path / "idx", 3)
    with pytest.raises(InputError, match="already holds a rankstack 'bm25-index'.*--overwrite"):
        save_index(tmp_path / "idx", 4)
    save_index(tmp_path / "idx", 4, overwrite=True)
    assert BM25Retriever.load(tmp_path / "idx").num_docs == 4
    other = tmp_path / "model"
    with atomic_directory(other) as tmp:
        (tmp / "w.bin").write_bytes(b"1")
        write_manifest(tmp, "ltr-model", 1, {})
    with pytest.raises(InputError, match="holds a rankstack 'ltr-model', not a 'bm25-index'"):
        save_index(other, 3, overwrite=True)


def test_empty_folder_is_replaced_and_files_are_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    save_index(tmp_path / "empty", 3)
    assert BM25Retriever.load(tmp_path / "empty").num_docs == 3
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="exists and is not a folder"):
        save_index(tmp_path / "file", 3)
    with pytest.raises(InputError, match="it is a file"):
        save_index(tmp_path / "file" / "idx", 3)
    assert (tmp_path / "file").read_text() == "x"


@pytest.mark.parametrize("where", ["same", "inside", "parent"])
def test_never_writes_into_or_over_an_input(tmp_path, where):
    coll = tmp_path / "data" / "coll"
    coll.mkdir(parents=True)
    (coll / "corpus.jsonl").write_text("{}\n")
    target = {"same": coll, "inside": coll / "idx", "parent": tmp_path / "data"}[where]
    with pytest.raises(InputError, match="input"):
        save_index(target, 3, overwrite=True, inputs=[coll])
    with pytest.raises(InputError, match="input"):
        check_output_file(coll / "corpus.jsonl", inputs=[coll])
    assert (coll / "corpus.jsonl").read_text() == "{}\n"
    assert not (coll / "idx").exists()


def test_output_file_checks(tmp_path):
    with pytest.raises(InputError, match="is a folder"):
        atomic_write_text(tmp_path, "x")
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="it is a file"):
        atomic_write_text(tmp_path / "f" / "run.trec", "x")


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_outputs_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "run.trec", "q Q0 d 1 1 r\n")
        save_index(tmp_path / "idx", 3)
    finally:
        os.umask(old)
    assert (tmp_path / "run.trec").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "idx").stat().st_mode & 0o777 == 0o777 & ~umask
    assert (tmp_path / "idx" / "manifest.json").stat().st_mode & 0o777 == 0o666 & ~umask
