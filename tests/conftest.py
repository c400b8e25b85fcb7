"""Shared fixtures: a tiny self-made BEIR collection, the real data root (skipped when absent) and a
headless Chromium for the browser tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
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


CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome", "chrome")
CHROMIUM_PATHS = ("/usr/lib/chromium/chromium", "/usr/bin/chromium", "/snap/bin/chromium")


def find_chromium() -> str | None:
    """A headless-capable Chromium: $CHROMIUM_BIN/$CHROME_BIN, then the usual names on PATH, then Debian's
    and snap's paths. Each candidate must answer `--version` with "Chrom": Ubuntu's `chromium-browser`
    can be a stub that only asks for snap, and a dangling name must not pass for a browser."""
    candidates = [os.environ.get("CHROMIUM_BIN"), os.environ.get("CHROME_BIN")]
    candidates += [shutil.which(name) for name in CHROMIUM_NAMES] + list(CHROMIUM_PATHS)
    for cand in dict.fromkeys(c for c in candidates if c):
        if not (os.path.isfile(cand) and os.access(cand, os.X_OK)):
            continue
        try:
            proc = subprocess.run([cand, "--version"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if proc.returncode == 0 and "chrom" in proc.stdout.lower():
            return cand
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a working Chromium. Skips when there is none, except under RANKSTACK_REQUIRE_BROWSER=1
    (.ci/run installs Debian's chromium and sets it), where a missing browser fails instead of skipping."""
    path = find_chromium()
    if path is None:
        msg = "chromium is not installed (apt-get install -y chromium chromium-driver, or set CHROMIUM_BIN)"
        if os.environ.get("RANKSTACK_REQUIRE_BROWSER") == "1":
            pytest.fail(msg + "; RANKSTACK_REQUIRE_BROWSER=1 requires it")
        pytest.skip(msg)
    return path
