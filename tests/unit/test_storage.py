"""storage: saves never destroy non-artefacts, a kill at any step leaves a complete verified
artefact, manifests bind their files and parameters, caches are keyed by content."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rankstack import storage
from rankstack.data.beir import Document
from rankstack.errors import InputError
from rankstack.retrieve.bm25 import BM25Retriever
from rankstack.storage import (atomic_directory, atomic_write_text, check_output_file, fingerprint,
                               read_manifest, write_manifest)

ROOT = Path(__file__).resolve().parents[2]


def docs(n: int) -> list[Document]:
    return [Document(f"d{i}", "", f"word{i} common text {i}") for i in range(n)]


def save_index(path: Path, n: int, **kw) -> None:
    BM25Retriever().index(docs(n)).save(path, **kw)


def leftovers(folder: Path, name: str = "idx") -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{name}."))


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


# content-addressed caches --------------------------------------------------------------------------
def test_fingerprint_sees_an_edit_with_mtime_restored(tmp_path):
    f = tmp_path / "corpus.jsonl"
    f.write_text('{"_id": "a", "text": "cats"}\n')
    st = f.stat()
    before = fingerprint(f)
    f.write_text('{"_id": "a", "text": "dogs"}\n')  # same size
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f.stat().st_size == st.st_size and f.stat().st_mtime_ns == st.st_mtime_ns
    assert fingerprint(f) != before
    assert fingerprint(tmp_path) == fingerprint(tmp_path)


# crashes at every step -----------------------------------------------------------------------------
CHILD = textwrap.dedent("""
    import os, signal, sys
    from rankstack import storage
    from rankstack.data.beir import Document
    from rankstack.retrieve.bm25 import BM25Retriever
    path, step, fallback = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    if fallback:
        storage.swap._exchange = lambda a, b: False
    def hook(name):
        if name == step:
            os.kill(os.getpid(), signal.SIGKILL)
    storage.swap._STEP_HOOK = hook
    if step == "writing":  # killed while the new files are being written
        real = storage.write_manifest
        def dying(*a, **k):
            os.kill(os.getpid(), signal.SIGKILL)
        import rankstack.retrieve.bm25 as bm
        bm.write_manifest = dying
    docs = [Document(f"d{i}", "", f"w{i} common") for i in range(7)]
    BM25Retriever().index(docs).save(path, overwrite=True)
""")

STEPS = {False: ["writing", "built", "locked", "exchanged", "removed-old"],
         True: ["writing", "built", "locked", "moved-old", "moved-new", "removed-old"]}


@pytest.mark.parametrize("fallback, step", [(f, s) for f in (False, True) for s in STEPS[f]])
def test_sigkill_at_every_step_leaves_a_complete_artefact(tmp_path, fallback, step):
    path = tmp_path / "idx"
    save_index(path, 4)
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path), step, "1" if fallback else "0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    loaded = BM25Retriever.load(path)  # verifies every checksum; recovers an interrupted swap
    assert loaded.num_docs in (4, 7)
    expected_new = step in ("exchanged", "moved-new", "removed-old")
    assert loaded.num_docs == (7 if expected_new else 4)
    save_index(path, 5, overwrite=True)  # the next save cleans what the dead writer left
    assert leftovers(tmp_path) == []
    assert BM25Retriever.load(path).num_docs == 5


STRACE_CASES = [("rename", 1, False), ("rename", 2, False), ("renameat2", 1, False),
                ("rename", 1, True), ("rename", 2, True), ("rename", 3, True), ("rename", 4, True)]


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
@pytest.mark.parametrize("syscall, nth, fallback", STRACE_CASES)
def test_kill_at_each_rename_syscall(tmp_path, syscall, nth, fallback):
    """Syscall-level injection (strace counts each syscall separately): SIGKILL at the n-th call.

    A save calls rename for docids.json and manifest.json inside the temporary folder, then one
    renameat2(RENAME_EXCHANGE); the fallback swap calls rename twice more (old aside, new in).
    """
    path = tmp_path / "idx"
    save_index(path, 4)
    code = ("import sys; from rankstack import storage; from rankstack.data.beir import Document; "
            "from rankstack.retrieve.bm25 import BM25Retriever\n"
            "if sys.argv[2] == '1': storage.swap._exchange = lambda a, b: False\n"
            "BM25Retriever().index([Document(f'd{i}', '', f'w{i} common') for i in range(7)])"
            ".save(sys.argv[1], overwrite=True)")
    proc = subprocess.run(["strace", "-f", "-qq", "-o", "/dev/null", "-e",
                           f"inject={syscall}:signal=KILL:when={nth}", sys.executable, "-c", code,
                           str(path), "1" if fallback else "0"], capture_output=True, text=True, timeout=120)
    if "ptrace" in proc.stderr.lower():
        pytest.skip(f"strace cannot trace here: {proc.stderr.strip()[:200]}")
    assert proc.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL), (proc.returncode, proc.stderr)
    assert BM25Retriever.load(path).num_docs == 4  # killed on entry: the old index, or it is restored
    save_index(path, 5, overwrite=True)
    assert leftovers(tmp_path) == []


def test_concurrent_writers_and_readers(tmp_path):
    """A short run of benchmarks/stress_storage.py (the 30 s, 8+8 run is in BENCHMARKS.md)."""
    for extra in ([], ["--fallback"]):
        proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "stress_storage.py"),
                               "--writers", "3", "--readers", "3", "--seconds", "3",
                               "--path", str(tmp_path / ("fb" if extra else "ex")), *extra],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        assert summary["read_failures"] == 0 and summary["write_failures"] == 0
        assert summary["saves"] > 0 and summary["loads"] > 0
