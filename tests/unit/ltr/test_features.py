"""Text features and the LTR reranking stage; ltr train then rerank through the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rankstack.errors import InputError


# features over a text collection ---------------------------------------------------------------------
def test_feature_extractor_and_ltr_stage(tiny_collection: Path, tmp_path: Path) -> None:
    from rankstack.data.beir import Collection
    from rankstack.ltr.features import BASE_FEATURES, FeatureExtractor, LTRReranker, train_ltr_reranker
    from rankstack.pipeline.expression import parse_pipeline
    from rankstack.registry import Context
    from rankstack.retrieve.bm25 import BM25Retriever

    coll = Collection(tiny_collection)
    bm25 = BM25Retriever.from_collection(coll)
    ext = FeatureExtractor(coll)
    queries = coll.queries("test")
    run = (bm25 % 5)(queries)
    data = ext.extract(run, coll.qrels("test"))
    assert data.features.shape == (len(run), len(BASE_FEATURES))
    col = {n: i for i, n in enumerate(BASE_FEATURES)}
    np.testing.assert_allclose(data.features[:, col["bm25"]], run.scores, rtol=1e-5)  # same BM25
    assert data.labels[(data.qids == "q1") & (data.docids == "d6")].tolist() == [2]
    assert np.all(data.features[:, col["query_coverage"]] <= 1)
    model = {"name": "lambdamart", "args": {"num_boost_round": 5, "min_data_in_leaf": 1,
                                            "min_sum_hessian_in_leaf": 0.0}}
    rr = train_ltr_reranker(coll, bm25 % 5, split="test", model=model, valid_fraction=0.34, extractor=ext)
    rr.save(tmp_path / "ltr")
    loaded = LTRReranker.load(tmp_path / "ltr", coll)
    stage = parse_pipeline(f"bm25 % 5 >> ltr(model='{tmp_path / 'ltr'}')", Context(collection=coll))
    out = stage(queries)
    np.testing.assert_allclose(out.scores, loaded(run).scores)
    assert set(zip(out.qids, out.docids)) == set(zip(run.qids, run.docids))
    with pytest.raises(InputError, match="reranks a Run"):
        loaded(queries)


def test_cli_ltr_train_then_rerank(tiny_collection: Path, tmp_path: Path, capsys) -> None:
    from rankstack.cli import main

    out = tmp_path / "ltr"
    spec = "lambdamart(num_boost_round=5, min_data_in_leaf=1, min_sum_hessian_in_leaf=0.0)"
    assert main(["ltr", "train", "--collection", str(tiny_collection), "--split", "test", "--first-stage",
                 "bm25 % 5", "--model", spec, "--valid-fraction", "0.34", "--out", str(out),
                 "--cache-dir", "none"]) == 0
    assert (out / "manifest.json").is_file() and (out / "model" / "model.txt").is_file()
    run = tmp_path / "ltr.run"
    assert main(["retrieve", "--collection", str(tiny_collection), "--retriever",
                 f"bm25 % 5 >> ltr(model='{out}')", "--out", str(run), "--cache-dir", "none"]) == 0
    # the CLI's run is exactly the saved LTR model applied to BM25's top 5 of every query
    from rankstack.data.beir import Collection
    from rankstack.data.trec import read_run
    from rankstack.ltr.features import LTRReranker
    from rankstack.retrieve.bm25 import BM25Retriever

    coll = Collection(tiny_collection)
    first = (BM25Retriever.from_collection(coll) % 5)(coll.queries("test"))
    expected = LTRReranker.load(out, coll)(first)
    got = read_run(run)
    assert got.query_ids == first.query_ids
    assert all(len(d) == min(5, len(first.for_query(q)[0])) for q, d, _ in got.groups())
    assert set(zip(got.qids, got.docids)) == set(zip(first.qids, first.docids))
    want = {(q, d): s for q, d, s in zip(expected.qids, expected.docids, expected.scores)}
    np.testing.assert_allclose([want[(q, d)] for q, d in zip(got.qids, got.docids)], got.scores, rtol=1e-5)
