"""Neural dense PRF: the revision, the Stage, save/load (safetensors + manifest), the training loop."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("faiss")
pytest.importorskip("safetensors")

from rankstack.encode.base import Encoder  # noqa: E402
from rankstack.errors import InputError  # noqa: E402
from rankstack.registry import register  # noqa: E402
from rankstack.retrieve.dense import DenseIndex, DenseRetriever  # noqa: E402
from rankstack.retrieve.neural_prf import NeuralPRF, NeuralPRFModel, rocchio  # noqa: E402
from rankstack.types import Queries  # noqa: E402

DIM = 16


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


class TableEncoder(Encoder):
    """Looks a query's vector up in a table: deterministic on every CPU."""

    backend = "test"

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.table, self.dim, self.encoder_id = table, DIM, "table16"

    def _encode_batch(self, texts):
        return np.stack([self.table[t] for t in texts])


_RNG = np.random.default_rng(0)
DOCS = unit(_RNG.normal(size=(60, DIM)))
TABLE = {f"text {i}": unit(DOCS[i] + 0.5 * _RNG.normal(size=DIM)) for i in range(5)}


@register("test-table16", kind="encoder")
def _table_encoder(precision: str = "auto", threads: int = 0, batch_size: int = 32, max_length=None,
                   progress=None) -> TableEncoder:
    return TableEncoder(TABLE)


@pytest.fixture(scope="module")
def world():
    index = DenseIndex.build(DOCS, [f"d{i}" for i in range(60)], "table16")
    dense = DenseRetriever(TableEncoder(TABLE), index, k=20)
    queries = Queries.from_dict({f"q{i}": f"text {i}" for i in range(5)})
    return dense, queries


def test_revision_is_unit_norm_and_padding_is_ignored():
    rng = np.random.default_rng(1)
    model = NeuralPRFModel(DIM, "table16", hidden=8, max_fb=5, seed=3)
    q, fb = unit(rng.normal(size=(4, DIM))), unit(rng.normal(size=(4, 3, DIM)))
    out = model.revise(q, fb)
    assert out.shape == (4, DIM)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    padded = np.concatenate([fb, unit(rng.normal(size=(4, 2, DIM)))], axis=1)
    mask = np.array([[True] * 3 + [False] * 2] * 4)
    # masked-out feedback must not change the result, whatever the padding holds
    np.testing.assert_allclose(model.revise(q, padded, mask), out, atol=1e-6)
    with pytest.raises(InputError, match="at most 5 feedback"):
        model.revise(q, np.zeros((4, 6, DIM), np.float32))
    with pytest.raises(InputError, match="need q"):
        model.revise(q[:, :4], fb)


def test_same_seed_same_model_different_seed_different_model():
    q, fb = unit(np.ones((1, DIM))), unit(np.eye(DIM)[None, :3])
    a = NeuralPRFModel(DIM, "x", hidden=8, max_fb=3, seed=5).revise(q, fb)
    b = NeuralPRFModel(DIM, "x", hidden=8, max_fb=3, seed=5).revise(q, fb)
    c = NeuralPRFModel(DIM, "x", hidden=8, max_fb=3, seed=6).revise(q, fb)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_rocchio_is_the_weighted_mean_normalised():
    q, fb = np.array([[1.0, 0.0]], np.float32), np.array([[[0.0, 1.0], [0.0, 1.0]]], np.float32)
    np.testing.assert_allclose(rocchio(q, fb, 0.4, 0.6), unit(np.array([[0.4, 0.6]])), atol=1e-7)


def test_stage_first_pass_or_input_run_and_encoder_pinning(world):
    dense, queries = world
    model = NeuralPRFModel(DIM, "table16", hidden=8, max_fb=3)
    stage = NeuralPRF(dense, model, fb_docs=3, k=10)
    run = stage(queries)
    assert run.name == "neural_prf" and len(run) == 50 and set(run.query_ids) == set(queries.qids)
    # from an input run, its top documents are the feedback: the same first pass gives the same run
    again = stage(dense(queries))
    np.testing.assert_allclose(again.scores, run.scores, atol=1e-5)
    assert (again.docids == run.docids).all()
    assert len((stage % 4)(queries)) == 20
    with pytest.raises(InputError, match="encoder"):
        NeuralPRF(dense, NeuralPRFModel(DIM, "other-encoder", max_fb=3), fb_docs=3)
    with pytest.raises(InputError, match="fb_docs"):
        NeuralPRF(dense, model, fb_docs=0)


def test_save_load_round_trip_and_refusals(tmp_path, world):
    _, queries = world
    rng = np.random.default_rng(2)
    model = NeuralPRFModel(DIM, "table16", hidden=8, max_fb=4, seed=1, info={"note": "x"})
    q, fb = unit(rng.normal(size=(3, DIM))), unit(rng.normal(size=(3, 4, DIM)))
    path = tmp_path / "prf"
    model.save(path)
    assert sorted(p.name for p in path.iterdir()) == ["manifest.json", "weights.safetensors"]
    loaded = NeuralPRFModel.load(path)
    np.testing.assert_array_equal(loaded.revise(q, fb), model.revise(q, fb))
    assert loaded.info == {"note": "x"} and loaded.encoder_id == "table16"
    with pytest.raises(InputError, match="overwrite|exists|already"):
        model.save(path)
    model.save(path, overwrite=True)
    # a tampered manifest (e.g. claims another encoder) is refused
    m = json.loads((path / "manifest.json").read_text())
    m["params"]["encoder_id"] = "other"
    (path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(InputError, match="manifest was changed"):
        NeuralPRFModel.load(path)
    # changed weights are refused
    model.save(path, overwrite=True)
    blob = bytearray((path / "weights.safetensors").read_bytes())
    blob[-1] ^= 1
    (path / "weights.safetensors").write_bytes(bytes(blob))
    with pytest.raises(InputError, match="checksum"):
        NeuralPRFModel.load(path)


def test_registered_stage_builds_from_a_saved_model(tmp_path, world):
    import rankstack.retrieve.neural_prf  # noqa: F401  (until registry.COMPONENT_MODULES lists it)
    from rankstack.registry import build

    dense, queries = world
    path = tmp_path / "m"
    NeuralPRFModel(DIM, "table16", hidden=8, max_fb=3).save(path)
    saved = tmp_path / "index"
    dense.index.save(saved, extra_params={"encoder_spec": "test-table16"})
    spec = {"name": "neural_prf", "args": {"model": str(path), "fb_docs": 3, "k": 10, "index": str(saved),
                                           "encoder": "test-table16"}}
    stage = build(spec, kind="retriever")
    direct = NeuralPRF(dense, NeuralPRFModel.load(path), fb_docs=3, k=10)(queries)
    run = stage(queries)
    assert (run.docids == direct.docids).all()
    np.testing.assert_allclose(run.scores, direct.scores, atol=1e-6)
    with pytest.raises(InputError, match="fb_docs"):
        build({**spec, "args": {**spec["args"], "fb_docs": 4}}, kind="retriever")
    with pytest.raises(InputError):
        build({**spec, "args": {**spec["args"], "model": str(tmp_path / "missing")}}, kind="retriever")


def _lol_after_training(model, data, depths):
    """LoL of the trained model's per-depth ListNet losses on its training data."""
    import torch

    from rankstack.losses import get_loss
    from rankstack.losses.lol import lol_regularizer

    loss = get_loss("listnet", temperature=0.05)
    per_depth = []
    with torch.no_grad():
        for d in depths:
            new = torch.from_numpy(model.revise(data.q, data.fb[:, :d]))
            s = torch.einsum("bd,bld->bl", new, torch.from_numpy(data.cand))
            per_depth.append(torch.stack([loss(s[i:i + 1], torch.from_numpy(data.labels[i:i + 1]))
                                          for i in range(len(s))]))
    return float(lol_regularizer(torch.stack(per_depth, 1)))


def test_training_is_deterministic_and_lol_lowers_the_regulariser():
    from rankstack.recipes.prf import NeuralPRFConfig, PRFData, train

    rng = np.random.default_rng(0)
    n, k, L = 40, 4, 6
    q = unit(rng.normal(size=(n, DIM)))
    cand = unit(rng.normal(size=(n, L, DIM)))
    fb = np.concatenate([cand[:, :1], unit(rng.normal(size=(n, k - 1, DIM)))], axis=1)  # 1st feedback = positive
    labels = np.zeros((n, L), np.float32)
    labels[:, 0] = 1
    data = PRFData(q, fb, np.ones((n, k), bool), cand, labels, np.ones((n, L), bool), "table16")
    cfg = NeuralPRFConfig(depths=[1, 2, 4], epochs=4, batch_size=8, hidden=8, lr=1e-2, lol_weight=0.0)
    a, b = train(cfg, data), train(cfg, data)
    assert a.history == b.history
    np.testing.assert_array_equal(a.model.revise(q[:3], fb[:3]), b.model.revise(q[:3], fb[:3]))
    # here deeper feedback is pure noise; at the same budget LoL leaves about half the violation
    with_lol = train(NeuralPRFConfig(depths=[1, 2, 4], epochs=4, batch_size=8, hidden=8, lr=1e-2,
                                     lol_weight=1.0), data)
    assert _lol_after_training(with_lol.model, data, [1, 2, 4]) < 0.75 * _lol_after_training(a.model, data, [1, 2, 4])
    with pytest.raises(InputError, match="ascending"):
        NeuralPRFConfig(depths=[3, 1])
