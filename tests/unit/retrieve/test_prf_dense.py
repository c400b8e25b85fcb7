"""Dense PRF (Rocchio): the vector update against a NumPy reference, the new search, pipelines, errors."""

from __future__ import annotations


import numpy as np
import pytest

pytest.importorskip("faiss")

from rankstack.data.beir import Collection  # noqa: E402
from rankstack.encode.base import Encoder  # noqa: E402
from rankstack.errors import InputError  # noqa: E402
from rankstack.pipeline.expression import parse_pipeline  # noqa: E402
from rankstack.registry import Context, register  # noqa: E402
from rankstack.retrieve.dense import DenseIndex, DenseRetriever  # noqa: E402
from rankstack.retrieve.prf_dense import DensePRF, rocchio  # noqa: E402
from rankstack.types import Queries, Run  # noqa: E402
from tests.fixtures.beir import TOPIC_WORDS, write_topic_corpus  # noqa: E402

WORDS = TOPIC_WORDS


class WordEncoder(Encoder):
    """Sum of fixed random word vectors (seeded by the word's letters): deterministic on every CPU."""

    backend = "test"

    def __init__(self, dim: int = 16, **kw) -> None:
        super().__init__(**{k: v for k, v in kw.items() if k in ("batch_size", "progress")})
        self.dim, self.encoder_id = dim, f"prf-word{dim}"

    def _encode_batch(self, texts):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                seed = sum(ord(c) * 31 ** j for j, c in enumerate(w)) % (2 ** 32)
                out[i] += np.random.default_rng(seed).normal(size=self.dim)
        return out


@register("test-prf-word", kind="encoder")
def _word_encoder(precision: str = "auto", threads: int = 0, batch_size: int = 32, max_length=None,
                  progress=None) -> WordEncoder:
    return WordEncoder(batch_size=batch_size)


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    root = write_topic_corpus(tmp_path_factory.mktemp("coll"), n_docs=60, seed=3, noise_vocab=20,
                              noise_tokens=3, query_shift=3)
    return Collection(root)


@pytest.fixture(scope="module")
def retriever(collection):
    enc = WordEncoder()
    docs = list(collection.corpus())
    vecs = enc.encode([d.contents for d in docs])
    return DenseRetriever(enc, DenseIndex.build(vecs, [d.docid for d in docs], enc.encoder_id), k=20)


def test_rocchio_against_numpy_reference():
    rng = np.random.default_rng(0)
    q, fb = rng.normal(size=(3, 4)), rng.normal(size=(3, 2, 4))
    mask = np.array([[True, True], [True, False], [False, False]])
    out = rocchio(q, fb, alpha=0.7, beta=0.4, mask=mask)
    expected = np.stack([0.7 * q[0] + 0.4 * fb[0].mean(0), 0.7 * q[1] + 0.4 * fb[1, 0], 0.7 * q[2]])
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rocchio(q, fb), q + 0.5 * fb.mean(1), rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match="feedback vectors"):
        rocchio(q, fb[:, :, :3])


def test_dense_prf_equals_exhaustive_numpy_search(collection, retriever):
    queries = collection.queries("test")
    first = retriever(queries)
    run = DensePRF(retriever, fb_docs=3, alpha=1.0, beta=0.5)(first)
    docs = list(collection.corpus())
    dvecs = retriever.encoder.encode([d.contents for d in docs])
    qvecs = retriever.encoder.encode(list(queries.texts))
    for i, qid in enumerate(queries.qids):
        top3 = first.for_query(qid)[0][:3].tolist()
        new = qvecs[i] + 0.5 * dvecs[[int(d[1:]) for d in top3]].mean(0)
        scores = dvecs @ new
        got_docs, got_scores = run.for_query(qid)
        np.testing.assert_allclose(got_scores, np.sort(scores)[::-1][:20], rtol=1e-4, atol=1e-4)
        assert set(got_docs[:5].tolist()) == {f"d{j}" for j in np.argsort(-scores)[:5]}
    # on Queries it runs its own first search: the same result
    assert DensePRF(retriever, fb_docs=3)(queries).to_dict().keys() == run.to_dict().keys()
    np.testing.assert_allclose(DensePRF(retriever, fb_docs=3)(queries).scores, run.scores, rtol=1e-5)
    # beta=0 is the plain dense search (scores scaled by alpha)
    plain = DensePRF(retriever, fb_docs=3, alpha=2.0, beta=0.0)(queries)
    np.testing.assert_allclose(plain.scores, 2 * first.scores, rtol=1e-4, atol=1e-5)


def test_cutoff_deepens_and_feedback_comes_from_the_input_run(collection, retriever):
    queries = collection.queries("test")
    deep = (DensePRF(retriever, fb_docs=2) % 40)(queries)
    assert len(deep.for_query("q0")[0]) == 40
    # feedback read from a different input run changes the result
    other = Run.from_dict({q: {"d59": 1.0, "d58": 0.5} for q in queries.qids}, queries=queries)
    assert DensePRF(retriever, fb_docs=2)(other).to_dict() != DensePRF(retriever, fb_docs=2)(queries).to_dict()


def test_registered_stage_in_a_pipeline_expression(collection):
    ctx = Context(collection=collection)
    run = parse_pipeline("dense(encoder='test-prf-word') % 5 >> dense_prf(encoder='test-prf-word', fb_docs=2, "
                         "beta=0.3) % 10", ctx)(collection.queries("test"))
    assert len(run.query_ids) == 8 and len(run.for_query("q1")[0]) == 10


@pytest.mark.parametrize("args, message", [
    ("fb_docs=0", "fb_docs must be a positive integer"),
    ("alpha=-1", "alpha must be a finite number >= 0"),
    ("alpha=0, beta=0", "both 0"),
    ("beta='x'", "beta must be a number"),
    ("fb_doc=3", "did you mean 'fb_docs'"),
])
def test_bad_arguments(collection, args, message):
    with pytest.raises(InputError, match=message):
        parse_pipeline(f"dense_prf(encoder='test-prf-word', {args})", Context(collection=collection))


def test_unknown_feedback_document_is_named(collection, retriever):
    bad = Run.from_dict({"q0": {"nope": 1.0}}, queries=Queries(("q0",), ("brain",)))
    with pytest.raises(InputError, match="'nope' is not in the index"):
        DensePRF(retriever)(bad)
