"""ColBERT end-to-end retrieval: exhaustive = brute-force MaxSim, PLAID-style candidates, save/load refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("faiss")

from rankstack.data.beir import Collection  # noqa: E402
from rankstack.encode.colbert import ColBERTEncoder  # noqa: E402
from rankstack.errors import InputError  # noqa: E402
from rankstack.registry import Context  # noqa: E402
from rankstack.retrieve.late_interaction import ColBERTIndex, ColBERTRetriever, TokenStore  # noqa: E402
from rankstack.types import Queries, Run  # noqa: E402
from tests.fixtures.models import make_tiny_bert  # noqa: E402
from tests.unit.encode.test_colbert import reference_maxsim  # noqa: E402


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return make_tiny_bert(tmp_path_factory.mktemp("bert") / "m", head=False)


@pytest.fixture(scope="module")
def setup(tiny_bert, tmp_path_factory, one_torch_thread):
    from tests.fixtures.beir import write_beir

    coll = Collection(write_beir(tmp_path_factory.mktemp("coll") / "tiny"))
    enc = ColBERTEncoder(str(tiny_bert), dim=8, query_maxlen=8, doc_maxlen=24, precision="fp32")
    store = TokenStore.from_collection(enc, coll)
    index = ColBERTIndex.build(store, ncentroids=4, seed=0)
    return coll, enc, index


def brute_force(enc, coll, queries):
    docs = list(coll.corpus())
    vectors, offsets = enc.encode_docs([d.contents for d in docs])
    per_doc = [vectors[offsets[i]:offsets[i + 1]] for i in range(len(docs))]
    qv = enc.encode_queries(list(queries.texts))
    return [dict(zip([d.docid for d in docs], reference_maxsim(q, per_doc))) for q in qv]


def test_exhaustive_equals_brute_force_maxsim(setup):
    coll, enc, index = setup
    queries = coll.queries("test")
    run = ColBERTRetriever(enc, index, k=6, candidates="exhaustive")(queries)
    expected = brute_force(enc, coll, queries)
    for (qid, docids, scores), ref in zip(run.groups(), expected):
        ranked = sorted(ref.items(), key=lambda kv: (-kv[1], [-ord(c) for c in kv[0]]))
        assert list(docids) == [d for d, _ in ranked]
        np.testing.assert_allclose(scores, [s for _, s in ranked], rtol=1e-5, atol=1e-5)


def test_plaid_with_every_centroid_probed_equals_exhaustive(setup):
    coll, enc, index = setup
    queries = coll.queries("test")
    full = ColBERTRetriever(enc, index, k=6, candidates="exhaustive")(queries)
    plaid = ColBERTRetriever(enc, index, k=6, candidates="plaid", nprobe=4, ndocs=6)(queries)
    assert full.docids.tolist() == plaid.docids.tolist()
    np.testing.assert_allclose(full.scores, plaid.scores, rtol=1e-6)


def test_candidate_generation_recall_on_clustered_tokens():
    rng = np.random.default_rng(0)
    dim, n_docs, topics = 16, 200, 20
    centres = rng.normal(size=(topics, dim))
    docs = []
    for i in range(n_docs):  # each document's tokens come from two topics
        ts = rng.choice(topics, 2, replace=False)
        docs.append(centres[rng.choice(ts, 12)] + 0.3 * rng.normal(size=(12, dim)))
    vec = np.concatenate(docs).astype(np.float32)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    offsets = np.arange(0, 12 * n_docs + 1, 12)
    index = ColBERTIndex.build(TokenStore([f"d{i}" for i in range(n_docs)], vec, offsets, "e"), ncentroids=32)
    recall = []
    for i in range(20):
        q = docs[i][:4] + 0.2 * rng.normal(size=(4, dim))
        q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
        exact = set(np.argsort(-index.score_all(q))[:10].tolist())
        cand = set(index.candidates(q, nprobe=2, ndocs=40, threshold=0.4).tolist())
        recall.append(len(exact & cand) / 10)
    assert np.mean(recall) >= 0.9
    assert len(index.candidates(q, nprobe=2, ndocs=40, threshold=0.4)) <= 40


def test_run_input_is_restricted_and_scored_exactly(setup):
    coll, enc, index = setup
    queries = coll.queries("test")
    inp = Run(["q1", "q1", "q2"], ["d4", "d6", "d2"], [3.0, 2.0, 1.0], queries=queries)
    out = ColBERTRetriever(enc, index, candidates="exhaustive")(inp)
    expected = brute_force(enc, coll, queries)
    got = {(q, d): s for q, d, s in zip(out.qids.tolist(), out.docids.tolist(), out.scores.tolist())}
    assert set(got) == {("q1", "d4"), ("q1", "d6"), ("q2", "d2")}
    qpos = {q: i for i, q in enumerate(queries.qids)}
    for (q, d), s in got.items():
        assert s == pytest.approx(expected[qpos[q]][d], rel=1e-5)


def test_save_load_round_trip_and_refusals(setup, tiny_bert, tmp_path):
    coll, enc, index = setup
    retr = ColBERTRetriever(enc, index, k=3, model_spec=str(tiny_bert))
    retr.save(tmp_path / "idx")
    back = ColBERTRetriever.load(tmp_path / "idx", model=enc, k=3)
    queries = Queries(("q",), ("cats purr",))
    assert back(queries).docids.tolist() == retr(queries).docids.tolist()
    assert back.index.nbytes() == index.nbytes()
    other = ColBERTEncoder(str(tiny_bert), dim=8, query_maxlen=8, doc_maxlen=24, seed=7)
    with pytest.raises(InputError, match="encoder"):
        ColBERTRetriever.load(tmp_path / "idx", model=other)
    with pytest.raises(InputError, match="encoder"):
        ColBERTRetriever(other, index)
    codes = tmp_path / "idx" / "codes.npy"
    arr = np.load(codes)
    arr[0] = (arr[0] + 1) % 4
    np.save(codes, arr)
    with pytest.raises(InputError, match="codes.npy"):
        ColBERTIndex.load(tmp_path / "idx")
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["kind"] == "colbert-index"


def test_spec_builds_and_caches_the_index(setup, tiny_bert, tmp_path):
    from rankstack.pipeline.expression import parse_pipeline

    coll, _, _ = setup
    ctx = Context(collection=coll, cache_dir=tmp_path)
    spec = f"colbert(model='{tiny_bert}', candidates='exhaustive', ncentroids=4, query_maxlen=8, doc_maxlen=24) % 2"
    first = parse_pipeline(spec, ctx)(coll.queries("test"))
    assert len(first.groups().__next__()[1]) == 2
    assert any((tmp_path / "colbert").glob("index-*"))
    again = parse_pipeline(spec, ctx)(coll.queries("test"))
    assert again.docids.tolist() == first.docids.tolist()


def test_bad_arguments(setup):
    _, enc, index = setup
    with pytest.raises(InputError, match="candidates"):
        ColBERTRetriever(enc, index, candidates="ivf")
    with pytest.raises(InputError, match="nprobe"):
        ColBERTRetriever(enc, index, nprobe=0)
    with pytest.raises(InputError, match="not in the index"):
        ColBERTRetriever(enc, index)(Run(["q"], ["nope"], [1.0], queries=Queries(("q",), ("cats",))))
