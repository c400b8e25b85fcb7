"""BM25 on every shared BEIR collection reproduces the reference figures (../shared/NOTES.md)."""

from __future__ import annotations

import pytest

from rankstack.cli import main
from rankstack.data.beir import Collection
from rankstack.evaluate import evaluate
from rankstack.retrieve.bm25 import BM25Retriever

pytestmark = pytest.mark.integration

# bm25s k1 0.9 b 0.4 measured independently (NOTES.md); Pyserini's Lucene figures are within 0.01
REFERENCE = {"scifact": 0.676, "cranfield": 0.352, "cisi": 0.372, "msmarco_dl19_subset": 0.729}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_bm25_matches_reference(data_root, name):
    coll = Collection(name, data_root=data_root)
    run = BM25Retriever.from_collection(coll)(coll.queries("test"))
    ndcg = evaluate(run, coll.qrels("test"), "nDCG@10").mean["nDCG@10"]
    assert ndcg == pytest.approx(REFERENCE[name], abs=0.001)


def test_msmarco_qrels_without_header_keep_every_judgement(data_root):
    path = data_root / "msmarco_dl19_subset" / "qrels" / "test.tsv"
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    assert len(Collection("msmarco_dl19_subset", data_root=data_root).qrels("test")) == len(lines)


def test_cli_retrieve_evaluate_compare(data_root, tmp_path, capsys):
    base = ["--collection", "cranfield", "--data-root", str(data_root), "--cache-dir", str(tmp_path / "c")]
    assert main(["retrieve", *base, "--out", str(tmp_path / "bm25.run")]) == 0
    assert main(["retrieve", *base, "--retriever", "bm25(k1=1.5, b=0.9)", "--out",
                 str(tmp_path / "bm25b.run")]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--collection", "cranfield", "--data-root", str(data_root),
                 str(tmp_path / "bm25.run"), str(tmp_path / "bm25b.run"), "-m", "nDCG@10", "-m", "AP",
                 "--baseline", "bm25", "--per-query", str(tmp_path / "pq.csv")]) == 0
    out = capsys.readouterr().out
    assert "bm25b" in out and "nDCG@10" in out
    assert (tmp_path / "pq.csv").read_text().count("\n") > 200
