"""Fixtures for recipe tests: tiny synthetic LETOR partitions S1..S5 (labels follow feature 0)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rankstack.data.letor import write_letor
from tests.fixtures.letor import synthetic




@pytest.fixture
def letor_folder(tmp_path: Path) -> Path:
    n_queries = 20
    folder = tmp_path / "letor"
    folder.mkdir()
    for k in range(1, 6):
        write_letor(synthetic(n_queries, seed=k, prefix=f"s{k}q", name=f"S{k}", max_docs=11, empty_every=None), folder / f"S{k}.txt")
    return folder


@pytest.fixture
def deep_collection(tmp_path: Path) -> Path:
    """1,500 documents that all match every query: depth above BM25's default 1000 is observable."""
    import json

    folder = tmp_path / "deep"
    (folder / "qrels").mkdir(parents=True)
    rng = np.random.default_rng(0)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for i in range(1500):
            words = " ".join(f"w{w}" for w in rng.integers(0, 50, 6))
            fh.write(json.dumps({"_id": f"d{i}", "title": "", "text": f"common {words}"}) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as fh:
        for q in range(3):
            fh.write(json.dumps({"_id": f"q{q}", "text": f"common w{q}"}) + "\n")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" +
                                              "".join(f"q{q}\td{q * 7}\t1\n" for q in range(3)))
    return folder
