"""recipes.adore and recipes.ar2 on a tiny random-init encoder: ADORE leaves the document vectors
untouched and its saved index retrieves with the trained query encoder; AR2 alternates and saves both."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("faiss")
pytest.importorskip("sentence_transformers")

from tests.fixtures.models import make_tiny_bert  # noqa: E402
from tests.unit.recipes.test_biencoder import TOPICS, cfg, write_topics  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    """Shared fixture in tests/conftest.py."""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("adore")
    return write_topics(root / "topics"), make_tiny_bert(root / "bert", head=False), root


def test_adore_trains_only_the_query_encoder(tiny, tmp_path):
    from rankstack.data.beir import Collection
    from rankstack.encode.base import cached_encode, load_encoder
    from rankstack.encode.biencoder_model import load_trainable, weights_hash
    from rankstack.recipes.biencoder import run
    from rankstack.retrieve.dense import DenseIndex, build_dense

    coll, bert, root = tiny
    docs = list(Collection(coll).corpus())
    before = cached_encode(load_encoder(str(bert), precision="fp32"), [d.contents for d in docs],
                           [d.docid for d in docs], root / "cache").copy()
    out = tmp_path / "adore"
    outcome = run(cfg(tiny, method="adore", adore_depth=5, epochs=10, out=out))
    losses = outcome.losses()
    assert all(np.isfinite(losses)) and np.mean(losses[-3:]) < np.mean(losses[:3])
    assert outcome.best_validation is not None
    index, params = DenseIndex.load(out / "index")
    np.testing.assert_array_equal(index.vectors_of([d.docid for d in docs]), before)  # documents untouched
    assert params["adore_doc_encoder"] == load_encoder(str(bert), precision="fp32").encoder_id
    assert weights_hash(outcome.model) != weights_hash(load_trainable(str(bert)))  # the query side moved
    got = build_dense(index=str(out / "index"), precision="fp32", k=3)(Collection(coll).queries("test"))
    assert len(got) == 3 * len(TOPICS)


def test_ar2_alternates_and_saves_retriever_and_ranker(tiny, tmp_path):
    from sentence_transformers import SentenceTransformer

    from rankstack.recipes.biencoder import run
    from rankstack.rerank.cross_encoder import CrossEncoderReranker

    out = tmp_path / "ar2"
    outcome = run(cfg(tiny, method="ar2", ar2_rounds=2, ar2_ranker_steps=2, epochs=2, out=out))
    assert outcome.steps >= 4 and all(np.isfinite(outcome.losses()))
    assert {h["round"] for h in outcome.history} == {0, 1}
    SentenceTransformer(str(out), device="cpu")
    ranker = CrossEncoderReranker(str(out / "ranker"), precision="fp32")
    assert ranker.score_pairs(["why do cats purr"], ["cats purr"]).shape == (1,)


def test_frozen_documents_distillation_saves_the_fixed_index(tiny, tmp_path):
    from rankstack.data.beir import Collection
    from rankstack.encode.base import cached_encode, load_encoder
    from rankstack.errors import InputError
    from rankstack.recipes.biencoder import run
    from rankstack.retrieve.dense import DenseIndex, build_dense

    coll, bert, root = tiny
    teacher = make_tiny_bert(tmp_path / "teacher", head=True, seed=3)
    docs = list(Collection(coll).corpus())
    before = cached_encode(load_encoder(str(bert), precision="fp32"), [d.contents for d in docs],
                           [d.docid for d in docs], root / "cache").copy()
    out = tmp_path / "frozen"
    outcome = run(cfg(tiny, method="margin-mse", teacher=str(teacher), freeze_documents=True, epochs=4, out=out))
    assert all(np.isfinite(outcome.losses())) and outcome.best_validation is not None
    index, _ = DenseIndex.load(out / "index")
    np.testing.assert_array_equal(index.vectors_of([d.docid for d in docs]), before)
    assert len(build_dense(index=str(out / "index"), precision="fp32", k=2)(Collection(coll).queries("test"))) == 24
    with pytest.raises(InputError, match="freeze-documents"):
        cfg(tiny, freeze_documents=True, dynamic_rounds=1)
