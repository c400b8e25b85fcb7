"""Fuzzing the file readers: TREC runs and qrels, BEIR JSONL and folders, LETOR, click logs.

Any input (random bytes, mutated valid files, token soup, generated JSON) gives a result or a
RankstackError, never another exception; results that come back are well-formed.
"""

from __future__ import annotations

import json
import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from rankstack.data import read_letor, read_qrels, read_run, read_trec_qrels
from rankstack.data.beir import Collection, iter_corpus, read_beir_qrels, read_queries
from rankstack.types import Qrels, Run
from rankstack.unbiased.clicklog import ClickLog, read_clicklog
from tests.fuzz.fuzzlib import FUZZ, holds, inputs, mutated, write_temp

RUN = b"q1 Q0 d1 1 2.5 t\nq1 Q0 d2 2 1.5 t\nq2 Q0 d1 1 -0.5 t\n"
TREC_QRELS = b"q1 0 d1 1\nq1 0 d2 0\nq2 0 d1 2\n"
BEIR_QRELS = b"query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\n"
CORPUS = (b'{"_id": "d1", "title": "Cats", "text": "cats purr"}\n'
          b'{"_id": "d2", "title": "", "text": "dogs bark", "metadata": {}}\n')
QUERIES = b'{"_id": "q1", "text": "why do cats purr"}\n{"_id": "q2", "text": "dogs"}\n'
LETOR = b"2 qid:1 1:0.5 2:0.1 # docid = a\n0 qid:1 1:0.2 3:0.3 # docid = b\n1 qid:2 2:1.5\n"
CLICKS = (b'{"qid": "q1", "docids": ["a", "b"], "clicks": [0, 1]}\n'
          b'{"qid": "q2", "docids": ["c"], "clicks": [1]}\n')
CLICKS_P = b'{"qid": "q1", "docids": ["a", "b"], "clicks": [0, 1], "propensities": [1.0, 0.5]}\n'

QIDS, DOCIDS = ["q1", "q2", "10032"], ["d1", "d2", "GX008-86-4444840"]
RUN_COLUMNS = [QIDS, ["Q0"], DOCIDS, ["1", "2", "10"], ["2.5", "-0.5", "1e-3", "7"], ["t", "bm25"]]
QRELS_COLUMNS = [QIDS, ["0", "Q0"], DOCIDS, ["0", "1", "2", "-1"]]
BEIR_COLUMNS = [QIDS, DOCIDS, ["0", "1", "2"]]
LETOR_COLUMNS = [["0", "1", "2", "4"], ["qid:1", "qid:2", "qid:10032"], ["1:0.5", "1:0", "1:-3.25"],
                 ["2:0.1", "2:1e-6", "3:0.7"], ["# docid = a", "#docid = b", "", "# c"]]

json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(),
                        st.text(max_size=8), st.sampled_from(["", " ", "d1", "q 1", "\ud800", "1e400"]))
json_value = st.recursive(json_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)), max_leaves=10)


def json_lines(keys: list[str]) -> st.SearchStrategy[bytes]:
    """JSONL whose objects use the format's keys (plus a stray one) with values of any type."""
    obj = st.dictionaries(st.sampled_from(keys + ["x"]), json_value, max_size=len(keys) + 1)
    line = st.one_of(obj, json_value).map(lambda o: json.dumps(o, ensure_ascii=bool(hash(str(o)) & 1)))
    return st.lists(line, max_size=6).map(lambda ls: "\n".join(ls).encode("utf-8", "surrogatepass") + b"\n")


def check_run(run: Run | None) -> None:
    if run is not None:
        assert np.isfinite(run.scores).all()
        assert len(set(zip(run.qids.tolist(), run.docids.tolist()))) == len(run)


def check_qrels(qrels: Qrels | None) -> None:
    if qrels is not None:
        assert qrels.relevance.dtype.kind == "i"
        assert len(set(zip(qrels.qids.tolist(), qrels.docids.tolist()))) == len(qrels)


@FUZZ
@given(inputs(RUN, fields=(4, 7), columns=RUN_COLUMNS))
def test_run_reader(data):
    check_run(holds(lambda: read_run(write_temp(data, "x.run"))))


@FUZZ
@given(inputs(TREC_QRELS, fields=(3, 5), columns=QRELS_COLUMNS))
def test_trec_qrels_reader(data):
    check_qrels(holds(lambda: read_trec_qrels(write_temp(data, "q.txt"))))


@FUZZ
@given(st.one_of(inputs(BEIR_QRELS, sep="\t", fields=(2, 4), columns=BEIR_COLUMNS),
                 inputs(TREC_QRELS, fields=(3, 5), columns=QRELS_COLUMNS)))
def test_beir_and_autodetected_qrels_readers(data):
    path = write_temp(data, "test.tsv")
    check_qrels(holds(lambda: read_beir_qrels(path)))
    check_qrels(holds(lambda: read_qrels(path)))


@FUZZ
@given(st.one_of(inputs(CORPUS), json_lines(["_id", "title", "text", "metadata"])))
def test_corpus_reader(data):
    docs = holds(lambda: list(iter_corpus(write_temp(data, "corpus.jsonl"))))
    if docs is not None:
        assert all(isinstance(d.text, str) and d.docid.strip() for d in docs)
        assert len({d.docid for d in docs}) == len(docs)


@FUZZ
@given(st.one_of(inputs(QUERIES), json_lines(["_id", "text", "metadata"])))
def test_queries_reader(data):
    queries = holds(lambda: read_queries(write_temp(data, "queries.jsonl")))
    if queries is not None:
        assert len(set(queries.qids)) == len(queries.qids)
        assert all(t.strip() for t in queries.texts)


@FUZZ
@given(corpus=st.one_of(st.just(CORPUS), mutated(CORPUS)), queries=st.one_of(st.just(QUERIES), mutated(QUERIES)),
       qrels=st.one_of(st.just(BEIR_QRELS), mutated(BEIR_QRELS), st.none()),
       split=st.sampled_from(["test", "dev", "", "../test", "te/st", "tset"]))
def test_beir_folder(corpus, queries, qrels, split):
    folder = write_temp(corpus, "corpus.jsonl").parent
    (folder / "queries.jsonl").write_bytes(queries)
    (folder / "qrels").mkdir()
    if qrels is not None:
        (folder / "qrels" / "test.tsv").write_bytes(qrels)

    def use():
        c = Collection(folder)
        q = c.queries(split)
        docs = c.documents()
        assert set(q.qids) <= set(c.qrels(split).query_ids)
        return docs

    holds(use)


@FUZZ
@given(inputs(LETOR, fields=(1, 6), columns=LETOR_COLUMNS), st.sampled_from([None, 1, 3, 10]))
def test_letor_reader(data, n_features):
    letor = holds(lambda: read_letor(write_temp(data, "f.txt"), n_features=n_features))
    if letor is not None:
        assert letor.features.dtype == np.float32 and np.isfinite(letor.features).all()
        assert len(letor.labels) == len(letor.qids) == len(letor.features)
        assert n_features is None or letor.n_features == n_features


@FUZZ
@given(st.one_of(inputs(CLICKS), inputs(CLICKS_P), json_lines(["qid", "docids", "clicks", "propensities"])))
def test_clicklog_reader(data):
    log = holds(lambda: read_clicklog(write_temp(data, "clicks.jsonl")))
    if log is not None:
        assert isinstance(log, ClickLog)
        assert set(np.unique(log.clicks).tolist()) <= {0, 1}
        if log.propensities is not None:
            assert all(0 <= p <= 1 and math.isfinite(p) for p in log.propensities.ravel().tolist())
