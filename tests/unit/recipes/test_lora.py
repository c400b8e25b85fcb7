"""LoRA fine-tuning of the cross-encoder (``rankstack train reranker --lora-rank``): a tiny random-init BERT
trains a few steps end to end, only the adapters and the fresh head change, the adapter folder reloads
to identical scores, merging gives the same scores, and a tampered adapter or another base is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rankstack.data.beir import Collection
from rankstack.errors import InputError
from tests.fixtures.models import make_tiny_bert
from tests.unit.recipes.test_reranker import config, train_history, write_topic_collection

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    """Shared fixture in tests/conftest.py."""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One LoRA run on a headless tiny BERT (fresh head, like 'minilm'): (collection, base, adapter, report)."""
    from rankstack.recipes import reranker

    tmp = tmp_path_factory.mktemp("lora")
    base = make_tiny_bert(tmp / "base", head=False)
    coll = write_topic_collection(tmp / "topics")
    cfg = config(coll, tmp / "adapter", base, n_negatives=3, validation=2, validation_depth=10, epochs=12,
                 batch_size=3, lr=1e-2, max_length=32, seed=1, lora_rank=8,
                 lora_targets="query,key,value,dense", head_lr_multiplier=1.0)
    report = reranker.run(cfg, progress=False)
    return coll, base, tmp / "adapter", report


PAIRS_Q = ["why do cats purr", "why do cats purr", "dogs bark", "fish swim"]
PAIRS_D = ["t0d2", "t1d2", "t1d0", "t3d2"]


def _score(reranker, coll):
    return reranker.score(PAIRS_Q, Collection(coll).doc_texts(PAIRS_D))


def test_lora_trains_end_to_end_and_saves_only_an_adapter(trained):
    coll, base, adapter, report = trained
    history = train_history(adapter)
    k = max(1, len(history) // 4)
    assert np.mean(history[-k:]) < 0.8 * np.mean(history[:k])  # the loss falls
    files = sorted(p.name for p in adapter.iterdir())
    assert files == ["adapter_config.json", "adapter_model.safetensors", "manifest.json"]
    manifest = json.loads((adapter / "manifest.json").read_text())
    assert manifest["kind"] == "lora-adapter" and manifest["params"]["family"] == "cross-encoder"
    assert manifest["params"]["lora"]["rank"] == 8 and manifest["params"]["lora"]["alpha"] == 16.0
    p = report.parameters
    assert 0 < p["trainable"] < 0.5 * p["total"]


def test_only_adapter_and_head_parameters_change(tmp_path):
    """The frozen base weights are bit-identical after training; LoRA B matrices (zero at start) moved."""
    from rankstack.recipes.reranker_fit import prepare, train

    base = make_tiny_bert(tmp_path / "base", head=True)
    coll = write_topic_collection(tmp_path / "topics")
    cfg = config(coll, tmp_path / "a", base, epochs=3, batch_size=3, lr=5e-3, seed=2, validation=0, lora_rank=2)
    before = {k: v.clone() for k, v in
              __import__("transformers").AutoModelForSequenceClassification.from_pretrained(str(base)).state_dict().items()}
    fitted = train(cfg, Collection(coll), prepare(cfg, Collection(coll)), progress=False)
    changed_base, lora_b = [], []
    for name, value in fitted.model.named_parameters():
        if "lora_B" in name:
            lora_b.append(float(value.detach().abs().max()))
        elif "modules_to_save" not in name and "lora_" not in name:
            key = name.replace("base_model.model.", "").replace(".base_layer", "").replace(".original_module", "")
            assert not value.requires_grad, name
            if not torch.equal(value.detach(), before[key]):
                changed_base.append(name)
    assert changed_base == []
    assert lora_b and max(lora_b) > 0


def test_save_load_identical_and_merge_same_scores(trained, tmp_path):
    from rankstack.registry import Context, build
    from rankstack.rerank.cross_encoder import CrossEncoderReranker
    from rankstack.rerank.lora import merge_adapter

    coll, base, adapter, _ = trained
    ctx = Context(collection=Collection(coll))
    unmerged = build({"name": "lora_reranker", "args": {"adapter": str(adapter), "merge": False,
                                                          "precision": "fp32"}}, context=ctx)
    merged_mem = build({"name": "lora_reranker", "args": {"adapter": str(adapter), "precision": "fp32"}}, context=ctx)
    via_reranker = build({"name": "reranker", "args": {"model": str(adapter), "precision": "fp32"}}, context=ctx)
    a, b, c = _score(unmerged, coll), _score(merged_mem, coll), _score(via_reranker, coll)
    assert unmerged.max_length == 32
    np.testing.assert_array_equal(b, c)
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    # the second load of the same adapter scores identically
    np.testing.assert_array_equal(a, _score(build({"name": "lora_reranker", "args": {
        "adapter": str(adapter), "merge": False, "precision": "fp32"}}, context=ctx), coll))
    assert np.ptp(a) > 0
    merge_adapter(adapter, tmp_path / "merged")
    full = CrossEncoderReranker(str(tmp_path / "merged"), precision="fp32")
    np.testing.assert_allclose(_score(full, coll), a, atol=1e-5, rtol=0)
    assert json.loads((tmp_path / "merged" / "manifest.json").read_text())["kind"] == "cross-encoder"


def test_tampered_adapter_and_foreign_base_are_refused(trained, tmp_path):
    import shutil

    from rankstack.rerank.lora import load_cross_encoder_adapter

    coll, base, adapter, _ = trained
    other = make_tiny_bert(tmp_path / "other", head=False, seed=5)
    with pytest.raises(InputError, match="was trained on base") as err:
        load_cross_encoder_adapter(adapter, base=str(other))
    assert "\n" not in str(err.value)
    copy = tmp_path / "copy"
    shutil.copytree(adapter, copy)
    weights = copy / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(InputError, match="checksum of 'adapter_model.safetensors' does not match"):
        load_cross_encoder_adapter(copy)


def test_bad_lora_options_are_refused(tmp_path):
    from rankstack.recipes.config import from_mapping
    from rankstack.recipes.reranker import RerankerTrainConfig
    from rankstack.train.lora import LoraSettings, add_lora

    for bad, match in (({"lora_rank": 0}, "LoRA rank must be a positive integer"),
                       ({"lora_rank": 4, "lora_alpha": -1.0}, "LoRA alpha"),
                       ({"lora_rank": 4, "lora_dropout": 1.0}, "LoRA dropout"),
                       ({"lora_rank": 4, "lora_targets": " , "}, "at least one target"),
                       ({"lora_merge": True}, "--lora-merge needs --lora-rank")):
        with pytest.raises(InputError, match=match):
            from_mapping(RerankerTrainConfig, {"collection": "c", "out": "m", **bad})
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(str(make_tiny_bert(tmp_path / "b")), num_labels=1)
    with pytest.raises(InputError, match=r"'qurey' is not a linear layer of this model \(did you mean 'query'\?\)"):
        add_lora(model, LoraSettings(rank=2, targets=("qurey",)))


def test_lora_merge_option_writes_a_full_cross_encoder(tmp_path):
    from rankstack.recipes import reranker
    from rankstack.rerank.cross_encoder import CrossEncoderReranker

    base = make_tiny_bert(tmp_path / "base", head=False)
    coll = write_topic_collection(tmp_path / "topics")
    report = reranker.run(config(coll, tmp_path / "m", base, epochs=1, seed=3, lora_rank=2, lora_merge=True),
                          progress=False)
    assert json.loads((tmp_path / "m" / "manifest.json").read_text())["kind"] == "cross-encoder"
    r = CrossEncoderReranker(str(tmp_path / "m"), precision="fp32")
    assert np.all(np.isfinite(_score(r, coll))) and report.parameters["trainable"] < report.parameters["total"]
    assert not any("lora" in k for k in r.model.state_dict())
