"""``adacur``/``anncur`` built from pipeline expressions with a tiny random cross-encoder: the anchor
index is built once and cached by content, budgets fail before the model loads, an index of another
model is refused, and the ``train cur-index`` recipe writes an index the stage loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rankstack.errors import InputError
from tests.fixtures.models import make_tiny_bert

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import rankstack.rerank.cur  # noqa: E402,F401  (registers adacur/anncur even before the registry lists it)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, Path]:
    from rankstack.rerank.cross_encoder import CrossEncoderReranker

    out = []
    for seed in (0, 1):
        raw = make_tiny_bert(tmp_path_factory.mktemp(f"tiny{seed}") / "raw", seed=seed)
        folder = raw.parent / "ce"
        CrossEncoderReranker(str(raw), precision="fp32", max_length=32).save(folder)
        out.append(folder)
    return out[0], out[1]


def _ctx(tiny_collection: Path, cache: Path):
    from rankstack.data.beir import Collection
    from rankstack.registry import Context

    return Context(collection=Collection(tiny_collection), cache_dir=cache)


def test_adacur_in_a_pipeline_caches_its_anchor_index(models, tiny_collection, tmp_path, one_torch_thread):
    from rankstack.pipeline.expression import parse_pipeline

    ctx = _ctx(tiny_collection, tmp_path / "cache")
    expr = (f"bm25 % 5 >> adacur(model={str(models[0])!r}, precision='fp32', budget=3, rounds=2, "
            "anchor_queries=1)")
    stage = parse_pipeline(expr, ctx)
    queries = ctx.collection.queries("test")
    run = stage(queries)
    assert run.metadata["cur"]["ce_calls"] <= 3 * len(queries)
    for _, docs, scores in run.groups():
        assert len(docs) <= 5 and np.all(np.diff(scores) <= 0)
    cached = list((tmp_path / "cache" / "cur").glob("index-*/manifest.json"))
    assert len(cached) == 1
    before = cached[0].read_bytes()
    again = parse_pipeline(expr, ctx)(queries)                        # the cached index is reused, not rebuilt
    assert cached[0].read_bytes() == before
    assert again.to_dict() == run.to_dict()
    corpus = parse_pipeline(f"adacur(model={str(models[0])!r}, precision='fp32', budget=4, rounds=2, "
                            "anchor_queries=1, items='corpus') % 2", ctx)(queries)
    assert all(len(d) == 2 for _, d, _ in corpus.groups())
    assert len(list((tmp_path / "cache" / "cur").glob("index-*"))) == 1


def test_bad_budget_fails_before_the_model_loads(tiny_collection, tmp_path):
    from rankstack.pipeline.expression import parse_pipeline

    ctx = _ctx(tiny_collection, tmp_path / "cache")
    with pytest.raises(InputError, match="budget 2 is smaller than rounds 3"):
        parse_pipeline("bm25 >> adacur(model='no/such/model', budget=2, rounds=3)", ctx)
    with pytest.raises(InputError, match="anchor item"):
        parse_pipeline("bm25 >> anncur(model='no/such/model', budget=10, anchors=10)", ctx)
    with pytest.raises(InputError, match="needs a cross-encoder model"):
        parse_pipeline("bm25 >> adacur(budget=10)", ctx)


def test_recipe_writes_an_index_and_another_model_is_refused(models, tiny_collection, tmp_path, one_torch_thread):
    from rankstack.pipeline.expression import parse_pipeline
    from rankstack.recipes.cur import CURIndexConfig, run
    from rankstack.rerank.cur_index import AnchorIndex

    out = tmp_path / "cur-index"
    result = run(CURIndexConfig(collection=str(tiny_collection), model=str(models[0]), out=out,
                                anchor_queries=1, precision="fp32"), progress=False)
    assert "1 anchor queries x 6 documents" in result.to_text()
    index = AnchorIndex.load(out)
    assert index.scores.shape == (1, 6) and index.anchor_qids == ("q4",)
    ctx = _ctx(tiny_collection, None)
    ok = parse_pipeline(f"bm25 % 4 >> anncur(model={str(models[0])!r}, index={str(out)!r}, precision='fp32', "
                        "budget=3, anchors=1)", ctx)(ctx.collection.queries("test"))
    assert ok.metadata["cur"]["round_sizes"] == [1, 2]
    with pytest.raises(InputError, match="this CUR index was computed with"):
        parse_pipeline(f"bm25 >> adacur(model={str(models[1])!r}, index={str(out)!r}, budget=3, rounds=2)", ctx)
    with pytest.raises(InputError):                                  # an index is not replaced by accident
        run(CURIndexConfig(collection=str(tiny_collection), model=str(models[0]), out=out, anchor_queries=1,
                           precision="fp32"), progress=False)
    with pytest.raises(InputError, match="test queries into the index"):
        CURIndexConfig(collection=str(tiny_collection), model=str(models[0]), out=tmp_path / "x", anchor_split="test")
