"""encode.biencoder_model: the trainable SentenceTransformer scorer, the weights-keyed in-memory encoder,
and the atomic manifest-checked save that SentenceTransformer and rankstack's encoders load."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")

from rankstack.encode.biencoder_model import (BiEncoderScorer, InMemoryEncoder, embed, load_trainable,  # noqa: E402
                                              save_biencoder, tokenize, weights_hash)
from rankstack.errors import InputError  # noqa: E402
from tests.fixtures.models import make_tiny_bert  # noqa: E402

TEXTS = ["why do cats purr", "loyal dogs bark", "wild lions and tigers", "goldfish swim in bowls of water"]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    """Shared fixture in tests/conftest.py."""


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return make_tiny_bert(tmp_path_factory.mktemp("bi") / "bert", head=False)


def test_plain_encoder_gets_mean_pooling_and_unit_vectors(bert):
    model = load_trainable(str(bert))
    assert any(type(m).__name__ == "Normalize" for m in model.modules())
    with torch.no_grad():
        v = embed(model, tokenize(model, TEXTS, 16))
    assert v.shape == (4, 32)
    np.testing.assert_allclose(v.norm(dim=1).numpy(), 1.0, rtol=1e-5)


def test_scorer_in_batch_and_own_candidates(bert):
    model = load_trainable(str(bert))
    scorer = BiEncoderScorer(model, scale=2.0)
    q, d = tokenize(model, TEXTS[:2], 16), tokenize(model, TEXTS, 16)
    with torch.no_grad():
        full = scorer({"q": q, "d": d, "own": None})
        own = scorer({"q": q, "d": d, "own": torch.tensor([[0, 1], [3, 2]])})
        ref = 2.0 * embed(model, q) @ embed(model, d).T
    assert full.shape == (2, 4)
    torch.testing.assert_close(full, ref)
    torch.testing.assert_close(own, torch.stack([ref[0, [0, 1]], ref[1, [3, 2]]]))
    fixed = torch.nn.functional.normalize(torch.randn(3, 32), dim=-1)
    with torch.no_grad():
        got = scorer({"q": q, "d_vectors": fixed, "own": None})
    torch.testing.assert_close(got, 2.0 * embed(model, q) @ fixed.T)


def test_in_memory_encoder_id_follows_the_weights(bert):
    model = load_trainable(str(bert))
    enc = InMemoryEncoder(model, max_length=16, precision="fp32")
    first = enc.encoder_id
    assert InMemoryEncoder(load_trainable(str(bert)), max_length=16, precision="fp32").encoder_id == first
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    assert enc.refresh().encoder_id != first
    assert enc.encode(TEXTS).shape == (4, 32)
    assert weights_hash(model) in enc.encoder_id


def test_save_loads_in_sentence_transformers_and_rankstack(bert, tmp_path):
    from sentence_transformers import SentenceTransformer

    from rankstack.encode.base import load_encoder

    model = load_trainable(str(bert))
    ours = InMemoryEncoder(model, max_length=int(model.max_seq_length), precision="fp32").encode(TEXTS)
    out = tmp_path / "bi"
    save_biencoder(model, out, training={"steps": 3})
    assert (out / "model.safetensors").is_file() and not list(out.rglob("*.bin"))
    st = SentenceTransformer(str(out), device="cpu")
    np.testing.assert_allclose(st.encode(TEXTS, normalize_embeddings=True), ours, atol=1e-5)
    enc = load_encoder(str(out), precision="fp32")
    np.testing.assert_allclose(enc.encode(TEXTS), ours, atol=1e-5)
    reloaded = load_trainable(str(out))  # a saved bi-encoder is a valid start for more training
    assert weights_hash(reloaded) == weights_hash(model)


def test_save_refuses_foreign_folder_and_load_refuses_tampering(bert, tmp_path):
    model = load_trainable(str(bert))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.txt").write_text("keep me")
    with pytest.raises(InputError):
        save_biencoder(model, tmp_path / "notes")
    assert (tmp_path / "notes" / "thesis.txt").read_text() == "keep me"
    out = tmp_path / "bi"
    save_biencoder(model, out)
    with pytest.raises(InputError, match="already holds"):
        save_biencoder(model, out)
    save_biencoder(model, out, overwrite=True)
    with open(out / "model.safetensors", "r+b") as fh:
        fh.seek(-4, 2)
        fh.write(b"\x00\x01\x02\x03")
    with pytest.raises(InputError, match="checksum"):
        load_trainable(str(out))


def test_bad_base_is_one_clear_error(tmp_path):
    with pytest.raises(InputError, match="no config.json"):
        load_trainable(str(tmp_path))
