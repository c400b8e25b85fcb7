"""Every kind of bad input gets an InputError naming the file, the line and what was expected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rankstack.data import read_letor, read_qrels, read_run, read_trec_qrels
from rankstack.data.beir import Collection, iter_corpus, read_beir_qrels, read_queries
from rankstack.errors import InputError
from rankstack.types import Qrels, Run


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return p


def raises_at(fn, path, line: int | None, *words: str):
    with pytest.raises(InputError) as info:
        fn(path)
    err = info.value
    assert err.path == str(path)
    if line is not None:
        assert err.line == line, str(err)
    text = str(err)
    for w in words:
        assert w in text, text
    return text


GOOD_RUN = "q1 Q0 d1 1 2.5 t\nq1 Q0 d2 2 1.5 t\n"


# --- TREC runs ------------------------------------------------------------------------------
def test_run_short_line(tmp_path):
    raises_at(read_run, write(tmp_path, "r.run", GOOD_RUN + "q2 Q0 d1 1\n"), 3, "6 columns", "found 4")


def test_run_non_numeric_score(tmp_path):
    raises_at(read_run, write(tmp_path, "r.run", GOOD_RUN + "q2 Q0 d1 1 high t\n"), 3, "'high'", "not a number")


def test_run_nan_score(tmp_path):
    raises_at(read_run, write(tmp_path, "r.run", "q1 Q0 d1 1 nan t\n"), 1, "not finite")


def test_run_inf_score(tmp_path):
    raises_at(read_run, write(tmp_path, "r.run", GOOD_RUN + "q1 Q0 d3 3 -inf t\n"), 3, "not finite")


def test_run_duplicate_pair(tmp_path):
    raises_at(read_run, write(tmp_path, "r.run", GOOD_RUN + "q1 Q0 d1 3 0.5 t\n"), 3, "twice", "line 1")


def test_run_empty_file(tmp_path):
    raises_at(read_run, write(tmp_path, "r.run", ""), None, "empty")


def test_run_blank_lines_only(tmp_path):
    raises_at(read_run, write(tmp_path, "r.run", "\n  \n"), None, "empty")


def test_run_invalid_utf8(tmp_path):
    raises_at(read_run, write(tmp_path, "r.run", GOOD_RUN.encode() + b"q1 Q0 d\xe9 3 0.1 t\n"), 3, "UTF-8")


def test_run_bom(tmp_path):
    raises_at(read_run, write(tmp_path, "r.run", b"\xef\xbb\xbf" + GOOD_RUN.encode()), 1, "byte-order mark")


def test_run_crlf(tmp_path):
    raises_at(read_run, write(tmp_path, "r.run", GOOD_RUN.replace("\n", "\r\n")), 1, "CRLF", "dos2unix")


def test_run_rank_not_integer(tmp_path):
    raises_at(read_run, write(tmp_path, "r.run", "q1 Q0 d1 first 2.5 t\n"), 1, "rank")


def test_run_missing_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_run(tmp_path / "nope.run")


def test_run_path_is_folder(tmp_path):
    with pytest.raises(InputError, match="folder"):
        read_run(tmp_path)


# --- qrels -----------------------------------------------------------------------------------
def test_trec_qrels_short_line(tmp_path):
    raises_at(read_trec_qrels, write(tmp_path, "q.txt", "q1 0 d1 1\nq1 0 d2\n"), 2, "4 columns")


def test_trec_qrels_non_integer_relevance(tmp_path):
    raises_at(read_trec_qrels, write(tmp_path, "q.txt", "q1 0 d1 1.5\n"), 1, "not an integer")


def test_trec_qrels_duplicate(tmp_path):
    raises_at(read_trec_qrels, write(tmp_path, "q.txt", "q1 0 d1 1\nq1 0 d1 0\n"), 2, "judged twice")


def test_beir_qrels_wrong_columns(tmp_path):
    raises_at(read_beir_qrels, write(tmp_path, "t.tsv", "query-id\tcorpus-id\tscore\nq1\td1\n"), 2,
              "3 tab-separated columns")


def test_beir_qrels_header_only(tmp_path):
    raises_at(read_beir_qrels, write(tmp_path, "t.tsv", "query-id\tcorpus-id\tscore\n"), None, "no judgements")


def test_beir_qrels_without_header_keeps_first_judgement(tmp_path):
    q = read_beir_qrels(write(tmp_path, "t.tsv", "q1\td1\t2\nq1\td2\t1\n"))
    assert len(q) == 2 and q.to_dict() == {"q1": {"d1": 2, "d2": 1}}
    q = read_beir_qrels(write(tmp_path, "h.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t2\n"))
    assert len(q) == 1


def test_read_qrels_detects_format(tmp_path):
    assert read_qrels(write(tmp_path, "a.txt", "q1 0 d1 1\n")).to_dict() == {"q1": {"d1": 1}}
    assert read_qrels(write(tmp_path, "b.tsv", "q1\td1\t1\n")).to_dict() == {"q1": {"d1": 1}}


# --- BEIR JSONL ------------------------------------------------------------------------------
def test_corpus_invalid_json(tmp_path):
    p = write(tmp_path, "corpus.jsonl", '{"_id": "d1", "text": "a"}\n{"_id": "d2", "text": \n')
    with pytest.raises(InputError) as info:
        list(iter_corpus(p))
    assert info.value.line == 2 and "invalid JSON" in str(info.value)


def test_corpus_missing_id(tmp_path):
    p = write(tmp_path, "corpus.jsonl", '{"title": "t", "text": "a"}\n')
    with pytest.raises(InputError, match="missing field '_id'"):
        list(iter_corpus(p))


def test_corpus_missing_text(tmp_path):
    p = write(tmp_path, "corpus.jsonl", '{"_id": "d1", "title": "t"}\n')
    with pytest.raises(InputError, match="missing field 'text'"):
        list(iter_corpus(p))


def test_corpus_duplicate_id(tmp_path):
    p = write(tmp_path, "corpus.jsonl", '{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": "b"}\n')
    with pytest.raises(InputError) as info:
        list(iter_corpus(p))
    assert info.value.line == 2 and "repeats line 1" in str(info.value)


def test_corpus_line_not_object(tmp_path):
    p = write(tmp_path, "corpus.jsonl", '["d1", "text"]\n')
    with pytest.raises(InputError, match="expected a JSON object"):
        list(iter_corpus(p))


def test_corpus_text_wrong_type(tmp_path):
    p = write(tmp_path, "corpus.jsonl", '{"_id": "d1", "text": 42}\n')
    with pytest.raises(InputError, match="must be a string"):
        list(iter_corpus(p))


def test_queries_empty_text(tmp_path):
    p = write(tmp_path, "queries.jsonl", '{"_id": "q1", "text": "cats"}\n{"_id": "q2", "text": "   "}\n')
    with pytest.raises(InputError) as info:
        read_queries(p)
    assert info.value.line == 2 and "empty text" in str(info.value)


def test_queries_id_with_space(tmp_path):
    p = write(tmp_path, "queries.jsonl", '{"_id": "q 1", "text": "cats"}\n')
    with pytest.raises(InputError, match="white space"):
        read_queries(p)


# --- collections -----------------------------------------------------------------------------
def test_unknown_split(tiny_collection):
    with pytest.raises(InputError) as info:
        Collection(tiny_collection).qrels("dev")
    assert "unknown split 'dev'" in str(info.value) and "test" in str(info.value)


def test_folder_that_is_not_a_collection(tmp_path):
    (tmp_path / "notbeir").mkdir()
    with pytest.raises(InputError, match="corpus.jsonl is missing"):
        Collection(tmp_path / "notbeir")


def test_unknown_collection_name_suggests(tmp_path):
    (tmp_path / "scifact").mkdir()
    with pytest.raises(InputError, match="did you mean 'scifact'"):
        Collection("scifct", data_root=tmp_path)


def test_qrels_naming_unknown_query(tiny_collection):
    with open(tiny_collection / "qrels" / "test.tsv", "a") as fh:
        fh.write("q99\td1\t1\n")
    with pytest.raises(InputError, match="missing from queries.jsonl"):
        Collection(tiny_collection).queries("test")


def test_doc_texts_unknown_docid(tiny_collection):
    with pytest.raises(InputError, match="not in"):
        Collection(tiny_collection).doc_texts(["d1", "nope"])


# --- LETOR -----------------------------------------------------------------------------------
LETOR_OK = "2 qid:1 1:0.5 2:0.1 # docid = a\n0 qid:1 1:0.2 2:0.3 # docid = b\n"


def test_letor_feature_ids_out_of_order(tmp_path):
    raises_at(read_letor, write(tmp_path, "f.txt", LETOR_OK + "1 qid:2 2:0.1 1:0.3\n"), 3, "out of order")


def test_letor_feature_id_repeated(tmp_path):
    raises_at(read_letor, write(tmp_path, "f.txt", "1 qid:2 1:0.1 1:0.3\n"), 1, "repeated")


def test_letor_missing_qid(tmp_path):
    raises_at(read_letor, write(tmp_path, "f.txt", "1 1:0.1 2:0.3\n"), 1, "qid:")


def test_letor_bad_feature_value(tmp_path):
    raises_at(read_letor, write(tmp_path, "f.txt", "1 qid:3 1:abc\n"), 1, "'1:abc'")


def test_letor_non_contiguous_query(tmp_path):
    raises_at(read_letor, write(tmp_path, "f.txt", LETOR_OK + "1 qid:2 1:0.1\n0 qid:1 1:0.9\n"), 4, "contiguous")


def test_letor_label_not_integer(tmp_path):
    raises_at(read_letor, write(tmp_path, "f.txt", "0.5 qid:1 1:0.1\n"), 1, "integer grade")


def test_letor_reads_sparse_and_comments(tmp_path):
    data = read_letor(write(tmp_path, "f.txt", LETOR_OK + "1 qid:2 3:0.7 # docid = c\n"))
    assert data.features.shape == (3, 3)
    assert data.docids.tolist() == ["a", "b", "c"]
    assert data.features[2].tolist() == pytest.approx([0, 0, 0.7])


# --- in-memory objects -------------------------------------------------------------------------
def test_run_object_rejects_nan():
    with pytest.raises(InputError, match="not a finite number"):
        Run(np.array(["q"]), np.array(["d"]), np.array([np.nan]))


def test_run_object_rejects_duplicates():
    with pytest.raises(InputError, match="more than once"):
        Run(np.array(["q", "q"]), np.array(["d", "d"]), np.array([1.0, 2.0]))


def test_qrels_object_rejects_fractional_labels():
    with pytest.raises(InputError, match="integers"):
        Qrels(np.array(["q"]), np.array(["d"]), np.array([0.5]))


def test_letor_parts_of_different_widths_are_not_joined_silently(tmp_path):
    from rankstack.data.letor import read_letor

    (tmp_path / "a.txt").write_text("1 qid:1 1:0.5 2:0.1 # docid = a\n")
    (tmp_path / "b.txt").write_text("0 qid:2 1:0.5 2:0.1 3:0.9 # docid = b\n")
    a, b = read_letor(tmp_path / "a.txt"), read_letor(tmp_path / "b.txt")
    with pytest.raises(InputError, match=r"\(2 features\) and .*\(3 features\)"):
        a.concat(b)
    joined = read_letor(tmp_path / "a.txt", n_features=3).concat(b)
    assert joined.features.shape == (2, 3)
