"""``rankstack train jpq`` end to end on a tiny collection with a tiny random-init encoder: frozen and
trained query encoder, the saved index loads as ``dense(index=FOLDER)`` with its own query encoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("faiss")
pytest.importorskip("sentence_transformers")

from rankstack.errors import InputError  # noqa: E402
from tests.fixtures.models import WORDS, make_tiny_bert  # noqa: E402


def _collection(root: Path, n_docs: int = 300, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    docs = [" ".join(rng.choice(WORDS, 6)) for _ in range(n_docs)]
    with open(root / "corpus.jsonl", "w") as fh:
        for i, text in enumerate(docs):
            fh.write(json.dumps({"_id": f"d{i}", "title": "", "text": text}) + "\n")
    rel = rng.choice(n_docs, 60, replace=False)
    with open(root / "queries.jsonl", "w") as fh:
        for j, r in enumerate(rel):
            fh.write(json.dumps({"_id": f"q{j}", "text": " ".join(docs[r].split()[:3])}) + "\n")
    (root / "qrels").mkdir()
    for split, rows in (("train", range(0, 45)), ("test", range(45, 60))):
        (root / "qrels" / f"{split}.tsv").write_text(
            "query-id\tcorpus-id\tscore\n" + "".join(f"q{j}\td{rel[j]}\t1\n" for j in rows))
    return root


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("jpqrecipe")
    return _collection(root / "coll"), make_tiny_bert(root / "bert", head=False), root


@pytest.mark.parametrize("train_encoder", [False, True])
def test_train_jpq_saves_an_index_dense_loads(setup, tmp_path, train_encoder):
    from rankstack.encode.base import load_encoder
    from rankstack.recipes.jpq import JPQTrainConfig, run
    from rankstack.registry import Context, build
    from rankstack.types import Queries

    coll, bert, root = setup
    cfg = JPQTrainConfig(collection=str(coll), out=tmp_path / "idx", cache_dir=root / "cache", encoder=str(bert),
                         m=4, train_encoder=train_encoder, epochs=2, batch_size=8, depth=20, validation=10,
                         encoder_lr=1e-3, precision="fp32", threads=1, eval_split="test")
    outcome = run(cfg, progress=False)
    assert outcome.steps == 2 * 5 and outcome.bytes_per_doc == 4 and outcome.index_type == "opq"
    assert set(outcome.evaluation) == {"test nDCG@10 starting opq", "test nDCG@10 JPQ"}
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())["params"]
    assert manifest["jpq"]["query_encoder_trained"] is train_encoder
    base_id = load_encoder(str(bert), precision="fp32").encoder_id
    if train_encoder:
        assert manifest["encoder_spec"] == "query_encoder" and (tmp_path / "idx" / "query_encoder").is_dir()
        assert manifest["encoder_id"] != base_id            # only the trained encoder may search it
    else:
        assert manifest["encoder_spec"] == str(bert) and manifest["encoder_id"] == base_id
    stage = build({"name": "dense", "args": {"index": str(tmp_path / "idx"), "k": 5, "precision": "fp32"}},
                  kind="retriever", context=Context())
    run_ = stage(Queries.from_dict({"q0": "why do cats purr"}))
    assert len(run_) == 5 and stage.encoder.encoder_id == manifest["encoder_id"]
    with pytest.raises(InputError):  # refuses to replace without --overwrite
        run(cfg, progress=False)


def test_cli_train_jpq(setup, tmp_path):
    from rankstack.cli import main

    coll, bert, root = setup
    code = main(["train", "jpq", "--collection", str(coll), "--encoder", str(bert), "--m", "4", "--epochs", "1",
                 "--batch-size", "16", "--validation", "0", "--precision", "fp32", "--cache-dir", str(root / "cache"),
                 "--depth", "10", "--out", str(tmp_path / "cli")])
    assert code == 0 and (tmp_path / "cli" / "manifest.json").is_file()
    assert main(["train", "jpq", "--collection", str(coll), "--m", "0"]) == 2
