"""Shared fixtures: a tiny self-made BEIR collection and the real data root (skipped when absent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rankstack.data.beir import default_data_root

TINY_DOCS = [
    ("d1", "Cats", "Cats are small domesticated felines that purr."),
    ("d2", "Dogs", "Dogs are loyal domesticated canines that bark."),
    ("d3", "Felines", "Lions and tigers are large wild felines."),
    ("d4", "Fish", "Goldfish swim in bowls of water."),
    ("d5", "Birds", "Parrots can mimic human speech and sing."),
    ("d6", "Purring", "Why do cats purr? Purring is a feline vocalisation."),
]
TINY_QUERIES = [("q1", "why do cats purr"), ("q2", "loyal dogs bark"), ("q3", "wild lions and tigers"),
                ("q4", "talking parrots")]
TINY_QRELS = {"test": [("q1", "d6", 2), ("q1", "d1", 1), ("q2", "d2", 1), ("q3", "d3", 1), ("q3", "d4", 0)],
              "train": [("q4", "d5", 1)]}


def write_beir(folder: Path, docs=TINY_DOCS, queries=TINY_QUERIES, qrels=TINY_QRELS, header: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for d, t, x in docs:
            fh.write(json.dumps({"_id": d, "title": t, "text": x, "metadata": {}}) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as fh:
        for q, t in queries:
            fh.write(json.dumps({"_id": q, "text": t, "metadata": {}}) + "\n")
    (folder / "qrels").mkdir(exist_ok=True)
    for split, rows in qrels.items():
        with open(folder / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as fh:
            if header:
                fh.write("query-id\tcorpus-id\tscore\n")
            for q, d, r in rows:
                fh.write(f"{q}\t{d}\t{r}\n")
    return folder


@pytest.fixture
def tiny_collection(tmp_path: Path) -> Path:
    return write_beir(tmp_path / "tiny")


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = default_data_root()
    if not (root / "scifact" / "corpus.jsonl").is_file():
        pytest.skip(f"shared collections not found under {root}")
    return root


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors on a shared 2-core machine: one torch thread avoids oversubscription (10-50x faster)."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
