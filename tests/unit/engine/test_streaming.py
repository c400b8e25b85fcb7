"""Streaming: the chunked corpus reader equals the whole-file reader; BM25 indexed from chunks equals BM25."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.data.beir import Collection, iter_corpus, iter_corpus_chunks
from rankstack.data.synthetic import SyntheticConfig, write_synthetic_collection
from rankstack.errors import InputError
from rankstack.retrieve.bm25 import BM25Retriever


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    return Collection(write_synthetic_collection(SyntheticConfig(docs=1500, queries=30, vocab_size=6000),
                                                 tmp_path_factory.mktemp("syn") / "c", progress=False))


@pytest.mark.parametrize("size", [1, 7, 1500, 5000])
def test_chunked_reader_equals_whole_reader(syn, size):
    chunks = list(iter_corpus_chunks(syn.corpus_path, size))
    assert all(0 < len(c) <= size for c in chunks)
    assert [d for c in chunks for d in c] == list(iter_corpus(syn.corpus_path))


def test_chunked_reader_checks_like_the_reader(tmp_path):
    (tmp_path / "corpus.jsonl").write_text('{"_id": "a", "text": "x"}\n{"_id": "a", "text": "y"}\n')
    with pytest.raises(InputError, match="repeats line 1"):
        list(iter_corpus_chunks(tmp_path / "corpus.jsonl", 1))
    with pytest.raises(InputError, match="chunk_size"):
        list(iter_corpus_chunks(tmp_path / "corpus.jsonl", 0))


@pytest.mark.parametrize("params", [{}, {"method": "bm25+", "stopwords": None, "stemmer": None}])
def test_bm25_from_chunks_equals_bm25(syn, params, tmp_path):
    queries = syn.queries("test")
    whole = BM25Retriever.from_collection(syn, **params)
    streamed = BM25Retriever.from_collection(syn, chunk_size=333, **params)
    a, b = (whole % 100)(queries), (streamed % 100)(queries)
    assert np.array_equal(a.qids, b.qids) and np.array_equal(a.docids, b.docids)
    assert np.array_equal(a.scores, b.scores)
    streamed.save(tmp_path / "idx")
    c = (BM25Retriever.load(tmp_path / "idx") % 100)(queries)
    assert np.array_equal(c.docids, a.docids) and np.array_equal(c.scores, a.scores)
