"""Hardened readers: line-length limit, compressed/binary files, CR characters, OS errors, overflow,
JSON that json.loads rejects in unusual ways, and the empty-qrels-folder hint."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from rankstack.data import read_letor, read_qrels, read_run, read_trec_qrels, textfile
from rankstack.data.beir import Collection, iter_corpus, read_beir_qrels, read_queries
from rankstack.data.textfile import read_lines
from rankstack.errors import InputError
from rankstack.unbiased.clicklog import read_clicklog, read_meta

GOOD_RUN = b"q1 Q0 d1 1 2.5 t\nq1 Q0 d2 2 1.5 t\n"
READERS = {
    "run": read_run,
    "trec_qrels": read_trec_qrels,
    "beir_qrels": read_beir_qrels,
    "qrels": read_qrels,
    "letor": read_letor,
    "queries": read_queries,
    "corpus": lambda p: list(iter_corpus(p)),
    "clicks": read_clicklog,
}


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def error_of(fn, path) -> InputError:
    with pytest.raises(InputError) as info:
        fn(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)
    return info.value


@pytest.mark.parametrize("reader", sorted(READERS))
def test_gzip_file_is_named_as_such_not_crlf(tmp_path, reader):
    p = write(tmp_path, "f.gz", gzip.compress(GOOD_RUN * 50))
    err = error_of(READERS[reader], p)
    assert "gzip-compressed" in str(err) and "decompress" in str(err)
    assert "CRLF" not in str(err)


@pytest.mark.parametrize("magic, words", [
    (b"BZh91AY&SY", "bzip2"), (b"\xfd7zXZ\x00\x00", "xz"), (b"PK\x03\x04rest", "zip archive"),
    (b"\xff\xfeq\x001\x00", "UTF-16"), (b"\x28\xb5\x2f\xfdxx", "zstd"),
])
def test_other_compressed_or_encoded_files(tmp_path, magic, words):
    err = error_of(read_run, write(tmp_path, "f", magic + b"\n" + GOOD_RUN))
    assert words in str(err)


@pytest.mark.parametrize("reader", sorted(READERS))
def test_nul_bytes_mean_binary(tmp_path, reader):
    err = error_of(READERS[reader], write(tmp_path, "f", GOOD_RUN + b"q1 Q0 d\x003 3 1.0 t\n"))
    assert "binary" in str(err)


def test_nul_bytes_on_a_later_line_name_the_line(tmp_path):
    err = error_of(read_run, write(tmp_path, "f", GOOD_RUN + b"q1 Q0 d\x003 3 1.0 t\n"))
    assert err.line == 3


@pytest.mark.parametrize("reader", sorted(READERS))
def test_line_longer_than_the_limit(tmp_path, reader, monkeypatch):
    monkeypatch.setattr(textfile, "MAX_LINE_BYTES", 64)
    monkeypatch.setattr(textfile, "MAX_DOCUMENT_LINE_BYTES", 64)
    err = error_of(READERS[reader], write(tmp_path, "f", b"x" * 200))
    assert "longer than 64 bytes" in str(err) and err.line == 1


def test_default_limit_is_one_mib_and_a_long_document_line_is_fine(tmp_path):
    err = error_of(read_run, write(tmp_path, "big.run", b"q" * ((1 << 20) + 10)))
    assert "longer than 1 MiB" in str(err)
    doc = json.dumps({"_id": "d1", "text": "word " * 300_000}).encode() + b"\n"  # 1.5 MB document
    assert [d.docid for d in iter_corpus(write(tmp_path, "corpus.jsonl", doc))] == ["d1"]


def test_line_exactly_at_the_limit_passes(tmp_path, monkeypatch):
    line = b"q1 Q0 d1 1 2.5 t\n"
    monkeypatch.setattr(textfile, "MAX_LINE_BYTES", len(line))
    assert len(read_run(write(tmp_path, "r.run", line))) == 1
    monkeypatch.setattr(textfile, "MAX_LINE_BYTES", len(line) - 2)
    error_of(read_run, write(tmp_path, "s.run", line))


def test_lone_carriage_return_inside_a_line(tmp_path):
    err = error_of(read_run, write(tmp_path, "r.run", b"q1 Q0 d1 1 2.5 t\rq1 Q0 d2 2 1.5 t\n"))
    assert "carriage return" in str(err) and "CRLF" not in str(err)


def test_crlf_still_reported_as_crlf(tmp_path):
    err = error_of(read_run, write(tmp_path, "r.run", GOOD_RUN.replace(b"\n", b"\r\n")))
    assert "CRLF" in str(err)


def test_fifo_is_readable(tmp_path):
    fifo = tmp_path / "pipe.run"
    os.mkfifo(fifo)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child writes and exits
        with open(fifo, "wb") as fh:
            fh.write(GOOD_RUN)
        os._exit(0)
    try:
        assert len(read_run(fifo)) == 2
    finally:
        os.waitpid(pid, 0)


def test_path_through_a_file_is_reported_as_missing(tmp_path):
    f = write(tmp_path, "afile", b"x\n")
    err = error_of(read_run, f / "r.run")
    assert "part of its path is a file" in str(err)


def test_unreadable_special_file_is_an_input_error(tmp_path):
    if not Path("/proc/self/mem").exists():
        pytest.skip("no /proc")
    err = error_of(read_run, Path("/proc/self/mem"))
    assert "cannot read run file" in str(err)


def test_socket_or_other_special_path_is_refused(tmp_path):
    import socket

    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        err = error_of(read_run, path)
    assert "not a regular file" in str(err)


# --- overflow and non-finite numbers ----------------------------------------------------------------
@pytest.mark.parametrize("value, words", [("1e20", "out of range"), ("inf", "not a finite integer"),
                                          ("-inf", "not a finite integer"), ("nan", "not a finite integer"),
                                          ("99999999999999999999", "out of range"), ("1e400", "not a finite")])
def test_relevance_overflow_and_non_finite(tmp_path, value, words):
    err = error_of(read_trec_qrels, write(tmp_path, "q.txt", f"q1 0 d1 1\nq1 0 d2 {value}\n".encode()))
    assert words in str(err) and err.line == 2
    err = error_of(read_beir_qrels, write(tmp_path, "q.tsv", f"q1\td1\t{value}\n".encode()))
    assert words in str(err)


def test_negative_relevance_is_kept(tmp_path):
    assert read_trec_qrels(write(tmp_path, "q.txt", b"q1 0 d1 -2\n")).to_dict() == {"q1": {"d1": -2}}


@pytest.mark.parametrize("line, words", [
    (b"1e20 qid:1 1:0.5\n", "finite integer grade"), (b"inf qid:1 1:0.5\n", "finite integer grade"),
    (b"nan qid:1 1:0.5\n", "finite integer grade"), (b"1 qid:1 1:1e39\n", "float32 range"),
    (b"1 qid:1 1:-1e300\n", "float32 range"), (b"1 qid:1 999999999999:1\n", "larger than 100000"),
    (b"1 qid:1 1:nan\n", "finite-value"), (b"1 qid:1 0:1\n", "1 or more"),
])
def test_letor_overflow_and_non_finite(tmp_path, line, words):
    err = error_of(read_letor, write(tmp_path, "f.txt", b"0 qid:1 1:0.1\n" + line))
    assert words in str(err) and err.line == 2


# --- JSON edge cases --------------------------------------------------------------------------------
@pytest.mark.parametrize("reader", ["queries", "corpus", "clicks"])
@pytest.mark.parametrize("line, words", [
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b'{"_id": ' + b"1" * 5000 + b"}", "JSON"),
    (b'{"_id": "d1", "text": "a"', "JSON"),
])
def test_json_lines_that_json_rejects_oddly(tmp_path, reader, line, words):
    err = error_of(READERS[reader], write(tmp_path, "f.jsonl", line + b"\n"))
    assert words in str(err)


@pytest.mark.parametrize("line", [b'{"_id": "d\\ud800", "text": "a"}', b'{"_id": "d1", "text": "x\\udfff"}'])
def test_unpaired_surrogate_escapes_are_refused(tmp_path, line):
    err = error_of(lambda p: list(iter_corpus(p)), write(tmp_path, "c.jsonl", line + b"\n"))
    assert "surrogate" in str(err)


def test_paired_surrogate_escape_is_fine(tmp_path):
    docs = list(iter_corpus(write(tmp_path, "c.jsonl", b'{"_id": "d1", "text": "\\ud83d\\ude00"}\n')))
    assert docs[0].text == "\U0001F600"


@pytest.mark.parametrize("line, words", [
    (b'{"qid": "q", "docids": ["a"], "clicks": [1], "propensities": [1e400]}', "not a number in [0, 1]"),
    (b'{"qid": "q", "docids": ["a"], "clicks": [1], "propensities": [' + b"9" * 400 + b"]}",
     "not a number in [0, 1]"),
    (b'{"qid": "q", "docids": ["a"], "clicks": [1], "propensities": [NaN]}', "not a number in [0, 1]"),
    (b'{"qid": "q\\ud800", "docids": ["a"], "clicks": [1]}', "surrogate"),
])
def test_clicklog_numbers_and_ids(tmp_path, line, words):
    err = error_of(read_clicklog, write(tmp_path, "c.jsonl", line + b"\n"))
    assert words in str(err)


@pytest.mark.parametrize("content", [b"{", b"[" * 100_000, b"\xff\xfe"])
def test_click_meta_sidecar_errors(tmp_path, content):
    write(tmp_path, "c.jsonl.meta.json", content)
    with pytest.raises(InputError, match="description"):
        read_meta(tmp_path / "c.jsonl")


# --- collections ------------------------------------------------------------------------------------
def test_empty_qrels_folder_says_it_is_empty(tiny_collection):
    for f in (tiny_collection / "qrels").iterdir():
        f.unlink()
    with pytest.raises(InputError) as info:
        Collection(tiny_collection).qrels("test")
    assert "qrels/ folder is empty" in str(info.value) and "no qrels/ folder" not in str(info.value)


def test_missing_qrels_folder_says_so(tiny_collection):
    import shutil

    shutil.rmtree(tiny_collection / "qrels")
    with pytest.raises(InputError, match="has no qrels/ folder"):
        Collection(tiny_collection).qrels("test")


def test_qrels_that_is_a_file(tiny_collection):
    import shutil

    shutil.rmtree(tiny_collection / "qrels")
    (tiny_collection / "qrels").write_text("x\n")
    with pytest.raises(InputError, match="qrels is a file"):
        Collection(tiny_collection).qrels("test")


def test_unknown_split_suggests_the_close_one(tiny_collection):
    with pytest.raises(InputError, match="did you mean 'test'"):
        Collection(tiny_collection).qrels("tset")


@pytest.mark.parametrize("split", ["../qrels/test", "", "a/b", ".."])
def test_split_must_be_a_name_not_a_path(tiny_collection, split):
    with pytest.raises(InputError, match="not a split name"):
        Collection(tiny_collection).qrels(split)


def test_read_lines_allow_empty(tmp_path):
    assert list(read_lines(write(tmp_path, "e", b"\n\n"), "thing", allow_empty=True)) == []
