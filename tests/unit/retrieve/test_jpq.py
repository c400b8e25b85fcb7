"""JPQ: reconstruction equals FAISS's decode at initialisation, training over the current PQ index
improves ranking, the exported FAISS index ranks as torch scores the trained centroids, saved
artefacts (manifest, checksums, ``dense(index=FOLDER)``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("faiss")
torch = pytest.importorskip("torch")

from rankstack.encode.base import Encoder  # noqa: E402
from rankstack.errors import InputError  # noqa: E402
from rankstack.registry import Context, build, register  # noqa: E402
from rankstack.retrieve.dense import DenseRetriever  # noqa: E402
from rankstack.retrieve.dense_index import DenseIndex  # noqa: E402
from rankstack.retrieve.jpq import JPQModule, pq_parts, save_jpq_index, sync_centroids  # noqa: E402
from rankstack.retrieve.jpq_train import search_run, train_jpq  # noqa: E402
from rankstack.types import Qrels, Queries  # noqa: E402

DIM, N_DOCS, N_QUERIES = 32, 600, 120


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    """Clustered unit vectors; query j is a noisy copy of its one relevant document."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(12, DIM))
    docs = _unit(centres[rng.integers(12, size=N_DOCS)] + 0.6 * rng.normal(size=(N_DOCS, DIM)))
    rel = rng.choice(N_DOCS, N_QUERIES, replace=False)
    queries = _unit(docs[rel] + 0.5 * rng.normal(size=(N_QUERIES, DIM)))
    docids = [f"d{i}" for i in range(N_DOCS)]
    qids = [f"q{j}" for j in range(N_QUERIES)]
    qrels = Qrels.from_dict({q: {docids[r]: 1} for q, r in zip(qids, rel)})
    return docs, docids, queries, Queries.from_dict({q: f"query {q}" for q in qids}), qrels


class VectorEncoder(Encoder):
    """Returns the fixture's query vectors by query text (so a saved index can be searched by spec)."""

    backend = "test"
    encoder_id = "jpq-test-vectors"
    dim = DIM
    table: dict[str, np.ndarray] = {}

    def _encode_batch(self, texts):
        return np.stack([self.table[t] for t in texts])


@register("jpq-test-vectors", kind="encoder")
def _vector_encoder(precision: str = "auto", threads: int = 0, batch_size: int = 32, max_length=None,
                    progress=None) -> VectorEncoder:
    return VectorEncoder(batch_size=batch_size)


@pytest.mark.parametrize("kind", ["pq", "opq"])
def test_reconstruction_equals_faiss_decode_at_initialisation(data, kind):
    docs, docids = data[0], data[1]
    index = DenseIndex.build(docs, docids, "e", index=kind, m=8, nbits=8, seed=0)
    parts = pq_parts(index.index)
    module = JPQModule(parts)
    with torch.no_grad():
        recon = module.reconstruct(torch.arange(N_DOCS)).numpy()
    np.testing.assert_allclose(recon, parts.pq_index.reconstruct_n(0, N_DOCS), rtol=0, atol=1e-6)
    np.testing.assert_allclose(recon, parts.pq_index.pq.decode(parts.codes.astype(np.uint8)), rtol=0, atol=1e-6)
    # in the input space (OPQ rotated back) it is the index's own reconstruction
    back = recon if parts.rotation is None else recon @ parts.rotation
    np.testing.assert_allclose(back, index.index.reconstruct_n(0, N_DOCS), rtol=0, atol=1e-5)
    assert (parts.rotation is not None) == (kind == "opq")
    # and the module's scores are FAISS's search scores
    q = torch.from_numpy(data[2][:5])
    scores, rows = index.search(data[2][:5], 10)
    with torch.no_grad():
        mine = module({"q_vec": q, "rows": torch.from_numpy(rows)}).numpy()
    np.testing.assert_allclose(mine, scores, rtol=0, atol=1e-5)


def test_pq_parts_refuses_other_indexes(data):
    flat = DenseIndex.build(data[0], data[1], "e", index="flat")
    with pytest.raises(InputError, match="PQ"):
        pq_parts(flat.index)
    six_bits = DenseIndex.build(data[0], data[1], "e", index="pq", m=8, nbits=6)
    with pytest.raises(InputError, match="8-bit"):
        pq_parts(six_bits.index)


def _train(data, kind="opq", **kw):
    docs, docids, qvecs, queries, qrels = data
    index = DenseIndex.build(docs, docids, "jpq-test-vectors", index=kind, m=4, nbits=8, seed=0)
    qids = list(queries.qids)
    args = dict(train_qids=qids[:90], val_qids=qids[90:], qvecs=qvecs, depth=20, epochs=6, batch_size=16,
                lr=3e-3, patience=None, seed=0, progress=False)
    return index, train_jpq(index, queries, qrels, **{**args, **kw})


def _ndcg(index, data, qids):
    from rankstack.evaluate import evaluate

    qpos = {q: i for i, q in enumerate(data[3].qids)}
    run = search_run(index, qids, data[2][[qpos[q] for q in qids]], 100)
    return evaluate(run, data[4].restrict(qids), ["nDCG@10"]).mean["nDCG@10"]


def test_training_improves_ranking_of_training_queries(data):
    docs, docids = data[0], data[1]
    before = _ndcg(DenseIndex.build(docs, docids, "e", index="opq", m=4, nbits=8, seed=0), data, list(data[3].qids)[:90])
    index, fit = _train(data)
    after = _ndcg(index, data, list(data[3].qids)[:90])
    assert after > before + 0.03
    assert fit.steps == 6 * 6 and fit.best_validation >= fit.initial_validation
    # the codes never change: only the centroids moved
    assert np.array_equal(pq_parts(index.index).codes, fit.parts.codes)
    start = pq_parts(DenseIndex.build(docs, docids, "e", index="opq", m=4, nbits=8, seed=0).index)
    assert np.array_equal(start.codes, fit.parts.codes)
    assert not np.allclose(start.centroids, pq_parts(index.index).centroids)


def test_same_seed_same_centroids(data):
    a = pq_parts(_train(data, epochs=2)[0].index).centroids
    b = pq_parts(_train(data, epochs=2)[0].index).centroids
    np.testing.assert_array_equal(a, b)


def test_exported_index_ranks_as_torch_scores_the_trained_centroids(data, tmp_path):
    index, fit = _train(data, kind="opq")
    save_jpq_index(index, tmp_path / "jpq", encoder_spec="jpq-test-vectors", jpq={"note": "test"})
    loaded, params = DenseIndex.load(tmp_path / "jpq")
    assert params["type"] == "opq" and params["jpq"] == {"note": "test"} and params["bytes_per_vector"] == 4
    q = data[2][:20]
    scores, rows = loaded.search(q, 10)
    with torch.no_grad():
        torch_scores = fit.module({"q_vec": torch.from_numpy(q),
                                   "rows": torch.arange(N_DOCS).expand(20, -1)}).numpy() / fit.module.scale
    order = np.argsort(-torch_scores, axis=1, kind="stable")[:, :10]
    np.testing.assert_allclose(scores, np.take_along_axis(torch_scores, order, 1), rtol=0, atol=1e-5)
    gaps = np.diff(np.sort(torch_scores, axis=1)[:, ::-1][:, :11], axis=1)
    clear = np.abs(gaps).min(axis=1) > 1e-4            # rows without a near-tie in the top 11
    assert clear.sum() >= 15
    np.testing.assert_array_equal(rows[clear], order[clear])


def test_saved_index_loads_as_a_dense_retriever_and_refuses_tampering(data, tmp_path):
    index, _ = _train(data, epochs=1)
    save_jpq_index(index, tmp_path / "jpq", encoder_spec="jpq-test-vectors")
    VectorEncoder.table = {data[3][q]: data[2][i] for i, q in enumerate(data[3].qids)}
    stage = build({"name": "dense", "args": {"index": str(tmp_path / "jpq"), "k": 10}}, kind="retriever",
                  context=Context())
    assert isinstance(stage, DenseRetriever)
    run = stage(data[3].subset(list(data[3].qids)[:5]))
    expect = search_run(index, list(data[3].qids)[:5], data[2][:5], 10)
    got, want = run.to_dict(), expect.to_dict()
    assert set(got) == set(want)
    for q in want:
        assert set(got[q]) == set(want[q])
        assert max(abs(got[q][d] - want[q][d]) for d in want[q]) < 1e-5
    with pytest.raises(InputError):  # an artefact of the same kind is not replaced silently
        save_jpq_index(index, tmp_path / "jpq", encoder_spec="jpq-test-vectors")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(InputError):  # nor is a folder that is not an artefact
        save_jpq_index(index, tmp_path / "other", encoder_spec="jpq-test-vectors", overwrite=True)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
    blob = tmp_path / "jpq" / "index.faiss"
    blob.write_bytes(blob.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(InputError, match="checksum"):
        DenseIndex.load(tmp_path / "jpq")


def test_sync_centroids_checks_the_shape(data):
    index = DenseIndex.build(data[0], data[1], "e", index="pq", m=4, nbits=8, seed=0)
    parts = pq_parts(index.index)
    with pytest.raises(InputError, match="centroids"):
        sync_centroids(parts, np.zeros((2, 256, 8), dtype=np.float32))


def test_train_checks_its_arguments(data):
    docs, docids, qvecs, queries, qrels = data
    index = DenseIndex.build(docs, docids, "e", index="pq", m=4, nbits=8, seed=0)
    with pytest.raises(InputError, match="exactly one"):
        train_jpq(index, queries, qrels, train_qids=list(queries.qids), val_qids=[])
    with pytest.raises(InputError, match="depth"):
        train_jpq(index, queries, qrels, train_qids=list(queries.qids), val_qids=[], qvecs=qvecs, depth=0)
    empty = Qrels.from_dict({"q0": {"d1": 0}})
    with pytest.raises(InputError, match="positive"):
        train_jpq(index, queries, empty, train_qids=["q0"], val_qids=[], qvecs=qvecs)


def test_manifest_records_the_training(data, tmp_path):
    index, fit = _train(data, epochs=1)
    save_jpq_index(index, tmp_path / "jpq", encoder_spec="jpq-test-vectors",
                   jpq={"steps": fit.steps, "initial_validation": fit.initial_validation})
    manifest = json.loads((tmp_path / "jpq" / "manifest.json").read_text())
    assert manifest["kind"] == "dense-index"
    assert manifest["params"]["jpq"]["steps"] == fit.steps
    assert manifest["params"]["encoder_spec"] == "jpq-test-vectors"
