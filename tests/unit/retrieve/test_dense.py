"""Dense retrieval: FAISS index types, save/load with the encoder pinned, the registered ``dense`` stage."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("faiss")

from rankstack.data.beir import Collection  # noqa: E402
from rankstack.encode.base import Encoder  # noqa: E402
from rankstack.errors import InputError  # noqa: E402
from rankstack.pipeline.expression import parse_pipeline  # noqa: E402
from rankstack.registry import Context, register  # noqa: E402
from rankstack.retrieve.dense import DenseIndex, DenseRetriever, default_nlist  # noqa: E402
from rankstack.types import Queries, Run  # noqa: E402
from tests.fixtures.beir import TOPIC_WORDS, write_topic_corpus  # noqa: E402


class HashEncoder(Encoder):
    """Bag of hashed words: deterministic, fast, and good enough to retrieve by word overlap."""

    backend = "test"

    def __init__(self, dim: int = 64, salt: str = "", **kw) -> None:
        super().__init__(**{k: v for k, v in kw.items() if k in ("batch_size", "progress")})
        self.dim, self.salt = dim, salt
        self.encoder_id = f"hash{dim}{salt}"

    def _encode_batch(self, texts):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                rng = np.random.default_rng(abs(hash((w, self.salt))) % (2 ** 32))
                out[i] += rng.normal(size=self.dim)
        return out


@register("test-hash", kind="encoder")
def _hash_encoder(precision: str = "auto", threads: int = 0, batch_size: int = 32, max_length=None,
                  progress=None) -> HashEncoder:
    return HashEncoder(batch_size=batch_size)


TOPICS = TOPIC_WORDS


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    root = write_topic_corpus(tmp_path_factory.mktemp("coll"), n_docs=400, seed=1, noise_vocab=50,
                              noise_tokens=4, query_shift=1)
    return Collection(root)


def _overlap(a: Run, b: Run, k: int) -> float:
    hits = []
    for q, d, _ in a.top_k(k).groups():
        hits.append(len(set(d.tolist()) & set(b.top_k(k).for_query(q)[0].tolist())) / k)
    return float(np.mean(hits))


@pytest.mark.parametrize("index, args, min_overlap", [
    ("hnsw", {"m": 16}, 0.95),
    ("ivf", {"nlist": 8, "nprobe": 8}, 0.999),   # nprobe == nlist: exhaustive
    ("pq", {"m": 16, "nbits": 6}, 0.4),
    ("ivfpq", {"m": 16, "nbits": 6, "nlist": 4, "nprobe": 4}, 0.4),
])
def test_index_types_against_exact(collection, index, args, min_overlap, tmp_path):
    queries = collection.queries("test")
    exact = DenseRetriever.from_collection(collection, encoder=HashEncoder(), k=20)(queries)
    approx_stage = DenseRetriever.from_collection(collection, encoder=HashEncoder(), index=index, k=20, **args)
    approx = approx_stage(queries)
    assert _overlap(exact, approx, 10) >= min_overlap
    # save / load round trip gives the same run
    approx_stage.save(tmp_path / "idx")
    loaded = DenseRetriever.load(tmp_path / "idx", encoder=HashEncoder(), k=20)
    again = loaded(queries)
    assert again.to_dict() == approx.to_dict()
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["params"]["type"] == index and manifest["params"]["encoder_id"] == "hash64"


def test_flat_scores_are_inner_products(collection):
    enc = HashEncoder()
    stage = DenseRetriever.from_collection(collection, encoder=enc, k=5)
    queries = collection.queries("test")
    run = stage(queries)
    docs = collection.documents()
    q, d, s = next(run.groups())
    qv = enc.encode([queries[q]])[0]
    dv = enc.encode([docs[x].contents for x in d])
    assert np.allclose(dv @ qv, s, atol=1e-5)
    assert list(s) == sorted(s, reverse=True) and len(d) == 5
    # as a reranker: scores the input run's documents exactly
    bm = Run.from_dict({q: {"d5": 1.0, "d7": 2.0}}, queries=queries.subset([q]))
    reranked = stage(bm)
    dv2 = enc.encode([docs["d5"].contents, docs["d7"].contents])
    assert reranked.to_dict()[q] == pytest.approx({"d5": float(dv2[0] @ qv), "d7": float(dv2[1] @ qv)}, abs=1e-5)


def test_refuses_another_encoder(collection, tmp_path):
    stage = DenseRetriever.from_collection(collection, encoder=HashEncoder(), k=5)
    stage.save(tmp_path / "idx")
    with pytest.raises(InputError, match="encoder"):
        DenseRetriever.load(tmp_path / "idx", encoder=HashEncoder(salt="other"))
    with pytest.raises(InputError, match="meaningless"):
        DenseRetriever(HashEncoder(salt="x"), stage.index)
    # a corrupt index file is refused by its checksum
    with open(tmp_path / "idx" / "index.faiss", "ab") as fh:
        fh.write(b"junk")
    with pytest.raises(InputError, match="checksum"):
        DenseRetriever.load(tmp_path / "idx", encoder=HashEncoder())


def test_bad_parameters():
    v = np.random.default_rng(0).normal(size=(100, 16)).astype(np.float32)
    ids = [f"d{i}" for i in range(100)]
    with pytest.raises(InputError, match="unknown index type"):
        DenseIndex.build(v, ids, "e", index="lsh")
    with pytest.raises(InputError, match="does not divide"):
        DenseIndex.build(v, ids, "e", index="pq", m=5)
    with pytest.raises(InputError, match="centroids"):
        DenseIndex.build(v, ids, "e", index="pq", m=4, nbits=8)
    with pytest.raises(InputError, match="nlist"):
        DenseIndex.build(v, ids, "e", index="ivf", nlist=500)
    with pytest.raises(InputError, match="unique"):
        DenseIndex.build(v, ["d"] * 100, "e")
    with pytest.raises(InputError, match="nprobe"):
        DenseIndex.build(v, ids, "e", index="ivf", nprobe=0)
    assert default_nlist(5183) == 132 and default_nlist(10) == 1
    idx = DenseIndex.build(v, ids, "e", index="pq", m=4, nbits=4)
    assert idx.params["bytes_per_vector"] == 2.0 and idx.nbytes() > 0
    scores, rows = idx.search(v[:2], 500)  # k above the collection size is clipped
    assert rows.shape == (2, 100)


def test_registered_dense_stage(collection, tmp_path):
    ctx = Context(collection=collection, cache_dir=tmp_path / "cache")
    stage = parse_pipeline("dense(encoder='test-hash', index='hnsw', m=8, k=7)", ctx)
    run = stage(collection.queries("test"))
    assert len(run.query_ids) == 8 and all(len(d) == 7 for _, d, _ in run.groups())
    assert list((tmp_path / "cache" / "embeddings").iterdir())  # corpus embeddings cached
    hybrid = parse_pipeline("fuse(dense(encoder='test-hash'), dense(encoder='test-hash', index='ivf'), "
                            "method=rrf) % 10", ctx)
    assert len(hybrid(collection.queries("test"))) == 80
    with pytest.raises(InputError, match="needs a collection"):
        parse_pipeline("dense(encoder='test-hash')", Context())
    with pytest.raises(InputError, match="neither a type"):
        parse_pipeline("dense(index='annoy')", ctx)
    saved = tmp_path / "saved"
    stage.save(saved)
    loaded = parse_pipeline(f"dense(index='{saved}', encoder='test-hash', k=7)", Context())
    assert loaded(collection.queries("test")).to_dict() == run.to_dict()


def test_default_queries_without_texts_error(collection):
    stage = DenseRetriever.from_collection(collection, encoder=HashEncoder(), k=5)
    with pytest.raises(InputError, match="query texts"):
        stage(Run.from_dict({"q0": {"d1": 1.0}}))
    out = stage(Queries(("x",), ("brain",)))
    docs, scores = out.for_query("x")
    assert out.query_ids == ["x"] and len(docs) == 5
    # the five returned are the exact inner-product top five of the whole collection, with those scores
    all_ids = stage.index.docids.tolist()
    exact = stage.index.vectors_of(all_ids) @ HashEncoder().encode(["brain"])[0]
    top = np.argsort(-exact, kind="stable")[:5]
    assert set(docs.tolist()) == {all_ids[i] for i in top}
    np.testing.assert_allclose(np.sort(scores)[::-1], exact[top], rtol=1e-5, atol=1e-6)


def _big_retriever(n: int = 2000, dim: int = 16) -> DenseRetriever:
    enc = HashEncoder(dim=dim)
    vectors = np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)
    index = DenseIndex.build(vectors / np.linalg.norm(vectors, axis=1, keepdims=True),
                             [f"d{i}" for i in range(n)], enc.encoder_id)
    return DenseRetriever(enc, index)  # default k=1000


def test_cutoff_above_the_default_k_is_pushed_down():
    dense = _big_retriever()
    queries = Queries(("q1", "q2"), ("brain cancer", "virus"))
    assert dense.k == 1000
    deep = (dense % 1500)(queries)
    assert [len(d) for _, d, _ in deep.groups()] == [1500, 1500]
    assert dense.k == 1000 and all(len(d) == 1000 for _, d, _ in dense(queries).groups())  # self unchanged
    assert dense.at_least(10) is dense  # never shallower
    assert dense.at_least(1500) is not dense and dense.at_least(1500).index is dense.index  # shares the index
    assert [len(d) for _, d, _ in (dense % 3000)(queries).groups()] == [2000, 2000]  # all there is
    with pytest.raises(InputError, match="k must be a positive integer"):
        dense.at_least(0)


def test_modules_import_light():
    import subprocess
    import sys

    code = ("import sys, rankstack, rankstack.retrieve.dense, rankstack.retrieve.fusion, rankstack.encode.onnx, "
            "rankstack.encode.sentence_transformers; "
            "print(sorted(m for m in ('torch', 'faiss', 'onnxruntime', 'sentence_transformers', 'ranx') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
