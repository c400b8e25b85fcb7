"""A tiny workspace for CLI tests: a BEIR collection under a data root, a run, qrels, LETOR folds,
a click log, an experiment file, a stray file and folders; the current folder is the workspace."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.unit.cli.clitools import letor_text


@pytest.fixture
def ws(tmp_path: Path, tiny_collection: Path, monkeypatch) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    shutil.move(tiny_collection, root / "tiny")
    monkeypatch.setenv("RANKSTACK_DATA", str(root))
    monkeypatch.delenv("RANKSTACK_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "good.run").write_text("q1 Q0 d6 1 2.5 t\nq1 Q0 d1 2 1.5 t\nq2 Q0 d2 1 3.0 t\n")
    (tmp_path / "qrels.txt").write_text("q1 0 d6 2\nq1 0 d1 1\nq2 0 d2 1\n")
    (tmp_path / "afile").write_text("just a file\n")
    (tmp_path / "adir").mkdir()
    (tmp_path / "thesis").mkdir()
    (tmp_path / "thesis" / "thesis.txt").write_text("years of work\n")
    for k in range(1, 6):
        (tmp_path / f"S{k}.txt").write_text(letor_text(10 * k))
    (tmp_path / "clicks.jsonl").write_text(
        json.dumps({"qid": "10", "docids": ["d10-0", "d10-1"], "clicks": [1, 0]}) + "\n")
    (tmp_path / "exp.toml").write_text('collection = "tiny"\nmeasures = ["nDCG@10"]\n[pipelines]\nbm25 = "bm25"\n')
    return tmp_path
