"""Sparse (SPLADE) index and Stage: top-k equals brute-force dot products (ties, k > matches), the
Stage contract shared with BM25, save/load, and refusals (tampered index, another vocabulary, empty
corpus or documents)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
sp = pytest.importorskip("scipy.sparse")

from rankstack.data.beir import Collection  # noqa: E402
from rankstack.errors import InputError  # noqa: E402
from rankstack.registry import Context, build  # noqa: E402
from rankstack.retrieve.sparse import SparseRetriever, build_index  # noqa: E402
from rankstack.retrieve.sparse_index import SparseIndex  # noqa: E402
from rankstack.types import Queries, Run  # noqa: E402
from tests.fixtures.beir import TINY_DOCS, write_beir  # noqa: E402
from tests.unit.encode.test_splade import make_tiny_mlm  # noqa: E402

ENC = {"vocab_hash": "v1", "fingerprint": "f1", "model": "m"}


def brute(qmat, dmat, docids, k):
    """Reference: every dot product, scores > 0, sorted by (score desc, docid desc), top k."""
    dense = (qmat @ dmat.T).toarray() if sp.issparse(qmat) else qmat @ dmat.T
    out = []
    for row in dense:
        items = [(float(s), d) for s, d in zip(row, docids) if s > 0]
        items.sort(key=lambda x: (-x[0], [-ord(c) for c in x[1]]))
        out.append(items[:k])
    return out


def as_pairs(result):
    return [list(zip(s.tolist(), d.tolist())) for d, s in result]


@pytest.mark.parametrize("k", [1, 3, 50])
def test_topk_equals_brute_force_with_ties(k):
    rng = np.random.default_rng(1)
    # integer impacts make ties frequent; some documents match no query term
    d = sp.random(40, 30, density=0.15, random_state=2, data_rvs=lambda n: rng.integers(1, 4, n)).astype(np.float32).tocsr()
    q = sp.random(12, 30, density=0.1, random_state=3, data_rvs=lambda n: rng.integers(1, 3, n)).astype(np.float32).tocsr()
    docids = [f"d{i:02d}" for i in rng.permutation(40)]
    index = SparseIndex.build(d, docids, ENC)
    got = index.search(q, k, threads=2, block=5)
    ref = brute(q, d, docids, k)
    for g, r in zip(as_pairs(got), ref):
        assert [(pytest.approx(s), doc) for s, doc in r] == [(s, doc) for s, doc in g]
    if k == 50:
        assert all(len(r) < k for r in ref)  # k > matches
        assert any(len({s for s, _ in r}) < len(r) for r in ref)  # ties, broken by docid


def test_threads_do_not_change_results():
    d = sp.random(200, 50, density=0.1, random_state=4, dtype=np.float32).tocsr()
    q = sp.random(70, 50, density=0.1, random_state=5, dtype=np.float32).tocsr()
    index = SparseIndex.build(d, [str(i) for i in range(200)], ENC)
    one, many = index.search(q, 10, threads=1, block=8), index.search(q, 10, threads=3, block=8)
    assert as_pairs(one) == as_pairs(many)


def test_index_bad_input():
    with pytest.raises(InputError, match="empty corpus"):
        SparseIndex.build(sp.csr_matrix((0, 5), dtype=np.float32), [], ENC)
    with pytest.raises(InputError, match="none of the 2 documents"):
        SparseIndex.build(sp.csr_matrix((2, 5), dtype=np.float32), ["a", "b"], ENC)
    with pytest.raises(InputError, match="not unique"):
        SparseIndex.build(sp.identity(2, format="csr", dtype=np.float32), ["a", "a"], ENC)
    with pytest.raises(InputError, match="non-negative"):
        SparseIndex.build(-sp.identity(2, format="csr", dtype=np.float32), ["a", "b"], ENC)


# ------------------------------------------------------------------------------------- the Stage
@pytest.fixture(scope="module")
def tiny_mlm(tmp_path_factory) -> Path:
    return make_tiny_mlm(tmp_path_factory.mktemp("mlm") / "mlm")


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Collection:
    return Collection(write_beir(tmp_path_factory.mktemp("beir") / "tiny"))


@pytest.fixture(scope="module")
def retriever(tiny_mlm, collection, one_torch_thread) -> SparseRetriever:
    return SparseRetriever.from_collection(collection, model=tiny_mlm, mode="full", precision="fp32", k=4)


def test_stage_returns_the_brute_force_top_k(retriever, collection):
    queries = collection.queries("test")
    run = retriever(queries)
    qmat = retriever.encoder.encode_queries(list(queries.texts))
    ref = brute(qmat, retriever.index.matrix.tocsr(), list(retriever.index.docids), 4)
    for (qid, docs, scores), r in zip(run.groups(), ref):
        assert list(docs) == [d for _, d in r]
        np.testing.assert_allclose(scores, [s for s, _ in r], rtol=1e-5)
    assert run.name == "splade" and run.queries is not None


def test_cutoff_pushes_depth_down_and_keeps_self(retriever, collection):
    deeper = retriever.at_least(6)
    assert deeper.k == 6 and retriever.k == 4 and deeper.index is retriever.index
    run = (retriever % 6)(collection.queries("test"))
    assert max(len(d) for _, d, _ in run.groups()) > 4


def test_on_a_run_it_rescores_exactly_the_input_documents(retriever, collection):
    queries = collection.queries("test")
    inp = Run(np.array(["q1", "q1", "q2"]), np.array(["d4", "d6", "d2"]), np.array([3.0, 2.0, 1.0]),
              queries=queries)
    out = retriever(inp)
    assert sorted(zip(out.qids.tolist(), out.docids.tolist())) == [("q1", "d4"), ("q1", "d6"), ("q2", "d2")]
    qmat = retriever.encoder.encode_queries(list(queries.texts)).toarray()
    dmat = retriever.index.matrix.toarray()
    row = {d: i for i, d in enumerate(retriever.index.docids)}
    qrow = {q: i for i, q in enumerate(queries.qids)}
    for q, d, s in zip(out.qids, out.docids, out.scores):
        assert s == pytest.approx(float(qmat[qrow[q]] @ dmat[row[d]]), rel=1e-5)
    with pytest.raises(InputError, match="not in the index"):
        retriever(Run(np.array(["q1"]), np.array(["nope"]), np.array([1.0]), queries=queries))


def test_inference_free_queries_are_idf_weighted_tokens(tiny_mlm, collection, retriever):
    sif = SparseRetriever(retriever.encoder, retriever.index, mode="idf", k=6)
    queries = Queries(("q1",), ("cats purr",))
    run = sif(queries)
    ids = retriever.encoder.token_ids(["cats purr"])[0]
    dmat = retriever.index.matrix.toarray()
    expected = dmat[:, ids] @ retriever.index.idf[ids]
    got = dict(zip(run.docids.tolist(), run.scores.tolist()))
    for d, i in zip(retriever.index.docids, range(len(dmat))):
        if expected[i] > 0:
            assert got[d] == pytest.approx(float(expected[i]), rel=1e-5)
    assert run.name == "splade_if"


def test_save_load_round_trip_and_refusals(retriever, collection, tmp_path, tiny_mlm):
    path = tmp_path / "idx"
    retriever.save(path)
    loaded = SparseRetriever.load(path, mode="full", k=4, model=tiny_mlm, precision="fp32")
    queries = collection.queries("test")
    a, b = retriever(queries), loaded(queries)
    assert a.docids.tolist() == b.docids.tolist()
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)
    with pytest.raises(InputError, match="already|exists|overwrite"):
        retriever.save(path)
    # another vocabulary: the index records a different vocabulary hash than this encoder's
    other = SparseIndex(retriever.index.matrix, retriever.index.docids,
                        {**retriever.index.encoder, "vocab_hash": "0000", "model": "other-model"})
    with pytest.raises(InputError, match="vocabulary.*other-model"):
        SparseRetriever(retriever.encoder, other)
    refit = SparseIndex(retriever.index.matrix, retriever.index.docids,
                        {**retriever.index.encoder, "fingerprint": "0000"}, idf=retriever.index.idf)
    with pytest.raises(InputError, match="expansions of model"):
        SparseRetriever(retriever.encoder, refit, mode="full")
    SparseRetriever(retriever.encoder, refit, mode="idf")  # inference-free queries need only the vocabulary
    # tampering: one changed byte in the impacts is caught by the manifest checksums
    data = bytearray((path / "impacts.npz").read_bytes())
    data[-10] ^= 0xFF
    (path / "impacts.npz").write_bytes(bytes(data))
    with pytest.raises(InputError, match="checksum"):
        SparseIndex.load(path)


def test_loading_a_foreign_vocabulary_index_is_refused(retriever, tmp_path, tiny_mlm):
    other_mlm = make_tiny_mlm(tmp_path / "other", seed=1)
    vocab = json.loads((other_mlm / "tokenizer.json").read_text())
    vocab["model"]["vocab"]["zebra"] = len(vocab["model"]["vocab"])  # one more word: another vocabulary
    (other_mlm / "tokenizer.json").write_text(json.dumps(vocab))
    retriever.save(tmp_path / "idx")
    with pytest.raises(InputError, match="vocabulary"):
        SparseRetriever.load(tmp_path / "idx", model=other_mlm, precision="fp32")


def test_empty_corpus_and_empty_documents(tiny_mlm, tmp_path, retriever):
    enc = retriever.encoder
    empty = write_beir(tmp_path / "empty", docs=[])
    with pytest.raises(InputError, match="empty corpus"):
        build_index(enc, empty)
    blank = write_beir(tmp_path / "blank", docs=[("a", "", ""), ("b", "", "  ")])
    with pytest.raises(InputError, match="all 2 documents are empty"):
        build_index(enc, blank)
    some = write_beir(tmp_path / "some", docs=[*TINY_DOCS, ("d7", "", "")])
    index = build_index(enc, some)
    assert len(index) == 7 and index.terms_per_doc()[-1] == 0


def test_registered_components(tiny_mlm, collection, tmp_path, retriever):
    ctx = Context(collection=collection, cache_dir=tmp_path / "cache")
    s = build({"name": "splade", "args": {"model": str(tiny_mlm), "k": 3, "precision": "fp32"}}, context=ctx)
    assert isinstance(s, SparseRetriever) and s.mode == "full"
    sif = build({"name": "splade_if", "args": {"model": str(tiny_mlm), "precision": "fp32"}}, context=ctx)
    assert sif.mode == "idf" and len(sif(collection.queries("test"))) > 0
    assert any((tmp_path / "cache" / "splade").iterdir())  # expansions cached for the next run
    retriever.save(tmp_path / "saved")
    again = build({"name": "splade_if", "args": {"index": str(tmp_path / "saved"), "model": str(tiny_mlm)}})
    assert again.mode == "idf"
    with pytest.raises(InputError, match="needs a collection"):
        build("splade_if")
