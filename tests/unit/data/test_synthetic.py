"""Synthetic BEIR collections: seeded and deterministic, prefix-stable, qrels by construction, realistic shape."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from rankstack.data.beir import Collection
from rankstack.data.synthetic import SyntheticConfig, generate_documents, write_synthetic_collection
from rankstack.errors import InputError


def _files(folder):
    return {name: (folder / name).read_bytes() for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv")}


def test_same_seed_same_bytes_other_seed_other_text(tmp_path):
    cfg = SyntheticConfig(docs=1200, queries=50, seed=3, vocab_size=5000)
    a = _files(write_synthetic_collection(cfg, tmp_path / "a", progress=False))
    b = _files(write_synthetic_collection(cfg, tmp_path / "b", progress=False))
    c = _files(write_synthetic_collection(SyntheticConfig(docs=1200, queries=50, seed=4, vocab_size=5000),
                                          tmp_path / "c", progress=False))
    assert a == b
    assert a["corpus.jsonl"] != c["corpus.jsonl"]


def test_smaller_corpus_is_a_prefix():
    small = list(generate_documents(SyntheticConfig(docs=300, queries=1, vocab_size=5000)))
    large = list(generate_documents(SyntheticConfig(docs=900, queries=1, vocab_size=5000)))
    assert large[:300] == small


def test_qrels_by_construction_and_collection_reads_it(tmp_path):
    cfg = SyntheticConfig(docs=2000, queries=40, seed=1, vocab_size=8000)
    coll = Collection(write_synthetic_collection(cfg, tmp_path / "syn", progress=False))
    queries, qrels = coll.queries("test"), coll.qrels("test")
    assert len(queries) == 40 and len(qrels.qids) == 40 and set(qrels.relevance.tolist()) == {1}
    docs = coll.documents()
    assert len(docs) == 2000
    overlap = []
    for q, d in zip(qrels.qids.tolist(), qrels.docids.tolist()):
        terms = queries[q].split()
        words = set(docs[d].contents.lower().replace(".", "").split())
        overlap.append(np.mean([t in words for t in terms]))
    assert np.mean(overlap) > 0.85  # query terms come from the relevant document (some noise terms)
    from rankstack.retrieve.bm25 import BM25Retriever

    from rankstack.evaluate import evaluate

    run = (BM25Retriever.from_collection(coll, stemmer=None, stopwords=None) % 10)(queries)
    assert evaluate(run, qrels, ["RR@10"]).mean["RR@10"] > 0.5  # retrievable, as real queries are


def test_shape_is_zipfian_with_realistic_lengths():
    docs = list(generate_documents(SyntheticConfig(docs=3000, queries=1, vocab_size=20000)))
    lengths = np.array([len(text.split()) for _, _, text in docs])
    assert 45 <= np.median(lengths) <= 75 and lengths.max() > 150  # ~60 words, long tail
    counts = np.array(sorted(Counter(w for _, _, t in docs for w in t.rstrip(".").split()).values(), reverse=True))
    ranks = np.arange(1, len(counts) + 1)
    slope = np.polyfit(np.log(ranks[10:2000]), np.log(counts[10:2000]), 1)[0]
    assert -1.5 < slope < -0.6  # Zipf: frequency ~ rank^-s


def test_bad_config_and_refused_overwrite(tmp_path):
    with pytest.raises(InputError, match="queries"):
        SyntheticConfig(docs=10, queries=20)
    with pytest.raises(InputError, match="docs"):
        SyntheticConfig(docs=0)
    out = tmp_path / "x"
    write_synthetic_collection(SyntheticConfig(docs=50, queries=5, vocab_size=2000), out, progress=False)
    assert json.loads((out / "manifest.json").read_text())["kind"] == "synthetic-collection"
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not a rankstack artefact"):
        write_synthetic_collection(SyntheticConfig(docs=50, queries=5, vocab_size=2000), tmp_path / "notes",
                                   progress=False)
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"


def test_synth_corpus_verb(tmp_path, capsys):
    from rankstack.cli import main

    assert main(["synth-corpus", "--docs", "300", "--queries", "5", "--vocab-size", "3000",
                 "--out", str(tmp_path / "s")]) == 0
    assert "300 passages, 5 queries" in capsys.readouterr().out
    assert len(Collection(tmp_path / "s").queries("test")) == 5
    assert main(["synth-corpus", "--docs", "3", "--queries", "5", "--out", str(tmp_path / "t")]) == 2
    assert "5 queries need" in capsys.readouterr().err
