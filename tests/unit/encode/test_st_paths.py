"""The bi-encoder's inference paths on a tiny random BERT (sentence-transformers folder): ONNX Runtime
equals torch fp32, int8 stays close, the embedding cache keys on the path, and the calibrated choice."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.encode.base import cached_encode, load_encoder
from rankstack.errors import InputError
from tests.unit.encode.test_base import TEXTS, make_tiny_st

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return make_tiny_st(tmp_path_factory.mktemp("tiny_st_paths"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("st_cache")


@pytest.fixture(scope="module")
def fp32(tiny_model, cache):
    return load_encoder(str(tiny_model), precision="fp32", batch_size=2, cache_dir=str(cache)).encode(TEXTS)


def test_onnx_fp32_equals_torch_fp32(tiny_model, cache, fp32):
    enc = load_encoder(str(tiny_model), precision="onnx-fp32", batch_size=2, cache_dir=str(cache))
    assert enc.precision == "onnx-fp32"
    out = enc.encode(TEXTS)
    assert out.shape == fp32.shape
    np.testing.assert_allclose(out, fp32, atol=1e-4)
    assert any(p.name.startswith("token-states-fp32-") for p in (cache / "onnx").iterdir())


@pytest.mark.parametrize("path", ["torch-int8", "onnx-int8"])
def test_int8_paths_stay_close(tiny_model, cache, fp32, path):
    out = load_encoder(str(tiny_model), precision=path, batch_size=3, cache_dir=str(cache)).encode(TEXTS)
    cos = np.sum(out * fp32, axis=1)
    assert np.all(cos > 0.99) and not np.array_equal(out, fp32)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_embedding_cache_keys_on_the_path(tiny_model, cache, tmp_path):
    store = tmp_path / "emb"
    a = load_encoder(str(tiny_model), precision="fp32", cache_dir=str(cache))
    b = load_encoder(str(tiny_model), precision="onnx-int8", cache_dir=str(cache))
    assert a.encoder_id == b.encoder_id  # one model: an index built by one accepts queries of the other
    va = cached_encode(a, TEXTS, None, store)
    vb = cached_encode(b, TEXTS, None, store)
    folders = sorted(p.name for p in (store / "embeddings").iterdir())
    assert len(folders) == 2 and any("onnx-int8" in f for f in folders)
    assert not np.array_equal(va, vb)  # the int8 vectors were computed, not served from the fp32 cache
    np.testing.assert_array_equal(cached_encode(a, TEXTS, None, store), va)


def test_calibrate_picks_a_measured_path_and_caches_it(tiny_model, cache):
    enc = load_encoder(str(tiny_model), precision="calibrate", batch_size=8, cache_dir=str(cache), threads=1)
    d = enc.calibration
    assert d is not None and not d.cached and enc.precision == d.path
    assert d.result("fp32").pearson == pytest.approx(1.0)
    assert d.result(d.path).items_per_s == max(r.items_per_s for r in d.results if r.ok)
    assert (cache / "inference").is_dir()
    again = load_encoder(str(tiny_model), precision="calibrate", batch_size=8, cache_dir=str(cache), threads=1)
    assert again.calibration.cached and again.precision == d.path


def test_unknown_path_and_unsupported_pooling(tiny_model, cache, monkeypatch):
    with pytest.raises(InputError, match="precision"):
        load_encoder(str(tiny_model), precision="int4")
    from rankstack.encode.sentence_transformers import SentenceTransformerEncoder

    enc = load_encoder(str(tiny_model), precision="fp32", cache_dir=str(cache))
    monkeypatch.setattr(enc.model[1], "pooling_mode_mean_tokens", False, raising=False)
    monkeypatch.setattr(enc.model[1], "pooling_mode", "cls", raising=False)
    if getattr(enc.model[1], "config", None) is not None:
        monkeypatch.setattr(enc.model[1].config, "pooling_mode_mean_tokens", False, raising=False)
        monkeypatch.setattr(enc.model[1].config, "pooling_mode", "cls", raising=False)
    with pytest.raises(InputError, match="mean Pooling"):
        SentenceTransformerEncoder.with_path(enc, "onnx-fp32")
