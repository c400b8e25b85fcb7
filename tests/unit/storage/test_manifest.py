"""Manifests bind: an edited manifest, an empty or partial file list, a changed, missing or extra file is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rankstack import storage
from rankstack.errors import InputError
from rankstack.retrieve.bm25 import BM25Retriever
from rankstack.storage import read_manifest
from tests.fixtures.indexes import save_index


# manifests that bind -------------------------------------------------------------------------------
def edit_manifest(path: Path, change, fix_checksum: bool = False) -> None:
    m = json.loads((path / "manifest.json").read_text())
    change(m)
    if fix_checksum:
        m["manifest_sha256"] = storage.manifest._manifest_digest(m)
    (path / "manifest.json").write_text(json.dumps(m))


@pytest.mark.parametrize("change, message", [
    (lambda m: m["params"].__setitem__("stemmer", None), "manifest was changed"),
    (lambda m: m["params"].__setitem__("k1", 2.0), "manifest was changed"),
    (lambda m: m.__setitem__("files", {}), "manifest was changed"),
    (lambda m: m.pop("manifest_sha256"), "manifest was changed"),
])
def test_edited_manifest_is_refused(tmp_path, change, message):
    save_index(tmp_path / "idx", 3)
    edit_manifest(tmp_path / "idx", change)
    with pytest.raises(InputError, match=message):
        BM25Retriever.load(tmp_path / "idx")


def test_resealed_manifest_still_cannot_lie(tmp_path):
    """Even with a recomputed manifest checksum: an empty file list or k1 that disagrees with the
    index data is refused."""
    save_index(tmp_path / "idx", 3)
    edit_manifest(tmp_path / "idx", lambda m: m["params"].__setitem__("k1", 2.0), fix_checksum=True)
    with pytest.raises(InputError, match="'k1' is 2.0 in the manifest but 0.9 in the index data"):
        BM25Retriever.load(tmp_path / "idx")
    save_index(tmp_path / "idx2", 3)
    edit_manifest(tmp_path / "idx2", lambda m: m.__setitem__("files", {}), fix_checksum=True)
    with pytest.raises(InputError, match="lists no files"):
        BM25Retriever.load(tmp_path / "idx2")
    save_index(tmp_path / "idx3", 3)
    edit_manifest(tmp_path / "idx3", lambda m: m["files"].pop("docids.json"), fix_checksum=True)
    with pytest.raises(InputError, match="'docids.json' is not listed"):
        BM25Retriever.load(tmp_path / "idx3")


def test_changed_missing_and_extra_files_are_refused(tmp_path):
    save_index(tmp_path / "idx", 3)
    (tmp_path / "idx" / "docids.json").write_text('["a", "b", "c"]')
    with pytest.raises(InputError, match="checksum of 'docids.json' does not match"):
        BM25Retriever.load(tmp_path / "idx")
    save_index(tmp_path / "idx", 3, overwrite=True)
    (tmp_path / "idx" / "docids.json").unlink()
    with pytest.raises(InputError, match="'docids.json' listed in the manifest is missing"):
        BM25Retriever.load(tmp_path / "idx")
    shutil.rmtree(tmp_path / "idx")
    save_index(tmp_path / "idx", 3)
    (tmp_path / "idx" / "extra.bin").write_bytes(b"x")
    with pytest.raises(InputError, match="'extra.bin' is not listed"):
        read_manifest(tmp_path / "idx", "bm25-index", (1,))


def test_manifest_must_be_json_object_of_the_right_kind(tmp_path):
    save_index(tmp_path / "idx", 3)
    with pytest.raises(InputError, match="expected a 'ltr-model'"):
        read_manifest(tmp_path / "idx", "ltr-model", (1,))
    (tmp_path / "idx" / "manifest.json").write_text("[1]")
    with pytest.raises(InputError, match="not a JSON object"):
        BM25Retriever.load(tmp_path / "idx")


def test_manifest_of_an_older_rankstack_is_named_as_such(tmp_path):
    save_index(tmp_path / "idx", 3)
    edit_manifest(tmp_path / "idx", lambda m: [m.pop(k) for k in ("manifest_sha256", "id", "created")])
    with pytest.raises(InputError, match="written by an older rankstack"):
        BM25Retriever.load(tmp_path / "idx")
