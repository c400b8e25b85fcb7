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


def test_streamed_faiss_index_equals_built_one():
    from rankstack.retrieve.dense import DenseIndex

    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(1500, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = [f"d{i}" for i in range(1500)]
    chunks = [(vecs[i:i + 400], ids[i:i + 400]) for i in range(0, 1500, 400)]
    whole = DenseIndex.build(vecs, ids, "e", index="flat")
    streamed = DenseIndex.build_streaming(iter(chunks), 1500, "e", index="flat")
    assert np.array_equal(whole.search(vecs[:5], 10)[1], streamed.search(vecs[:5], 10)[1])
    ivfpq = DenseIndex.build_streaming(iter(chunks), 1500, "e", index="ivfpq", m=4, nbits=4, nlist=8,
                                       train_size=500)
    assert len(ivfpq) == 1500 and ivfpq.params["nlist"] == 8
    hits = ivfpq.search(vecs[:50], 10)[1]
    assert np.mean([i in row for i, row in enumerate(hits)]) > 0.5  # approximate, but finds itself
    with pytest.raises(InputError, match="announced"):
        DenseIndex.build_streaming(iter(chunks), 1499, "e", index="flat")
