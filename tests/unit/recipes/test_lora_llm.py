"""recipes.lora_llm (``rankstack train llm-reranker``): a tiny random Llama trains a few LoRA steps end to end
with the shared Trainer and loss library, only the adapters change, and the adapter folder reranks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rankstack.data.beir import Collection
from rankstack.errors import InputError
from tests.unit.recipes.test_reranker import write_topic_collection
from tests.unit.rerank.test_lora import make_tiny_llama

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    """Shared fixture in tests/conftest.py."""


def config(coll: Path, out: Path, base: Path, **kw):
    from rankstack.recipes.lora_llm import LlmLoraConfig

    args = dict(collection=str(coll), out=out, base_model=str(base), n_negatives=2, negative_depth=10, epochs=15,
                batch_size=3, lr=5e-2, doc_tokens=12, lora_rank=4, lora_dropout=0.0, threads=1, precision="fp32",
                lora_targets="q_proj,v_proj,o_proj,up_proj,down_proj", cache_dir=None, seed=0)
    args.update(kw)
    return LlmLoraConfig(**args)


def test_llm_lora_trains_end_to_end_only_adapters_change(tmp_path):
    from rankstack.recipes import lora_llm
    from rankstack.rerank.lora import LlmPointwiseReranker, load_causal_lm

    base = make_tiny_llama(tmp_path / "base")
    coll = write_topic_collection(tmp_path / "topics")
    report = lora_llm.run(config(coll, tmp_path / "adapter", base), progress=False)
    manifest = json.loads((tmp_path / "adapter" / "manifest.json").read_text())
    losses = [h["loss"] for h in manifest["training"]["history"] if h["event"] == "train"]
    k = max(1, len(losses) // 4)
    assert np.mean(losses[-k:]) < 0.8 * np.mean(losses[:k])  # the loss falls
    assert report.steps == len(losses) and report.train_pairs > 0
    assert 0 < report.parameters["trainable"] < 0.5 * report.parameters["total"]
    assert manifest["params"]["family"] == "llm-pointwise" and manifest["params"]["doc_tokens"] == 12
    assert sorted(manifest["files"]) == ["adapter_config.json", "adapter_model.safetensors"]
    # the base weights are untouched: the adapter (merged or not) is what changed the scores
    fresh, _, _ = load_causal_lm(str(base))
    r = LlmPointwiseReranker(tmp_path / "adapter", merge=False, threads=1)
    base_state = {k.replace("base_model.model.", "").replace(".base_layer", ""): v
                  for k, v in r.model.state_dict().items() if "lora_" not in k}
    assert all(torch.equal(v, base_state[k]) for k, v in fresh.state_dict().items())
    docs = Collection(coll).doc_texts(["t0d2", "t0d0", "t1d2", "t1d1"])
    qs = ["why do cats purr"] * 2 + ["why do dogs bark"] * 2
    np.testing.assert_allclose(LlmPointwiseReranker(tmp_path / "adapter", threads=1).score(qs, docs), r.score(qs, docs),
                               atol=1e-5, rtol=0)


def test_llm_lora_config_and_cli_refuse_bad_options(tmp_path, capsys):
    from rankstack.cli import main

    with pytest.raises(InputError, match="LoRA rank must be a positive integer"):
        config(tmp_path, tmp_path / "a", tmp_path, lora_rank=0)
    with pytest.raises(InputError, match="--doc-tokens must be a positive integer"):
        config(tmp_path, tmp_path / "a", tmp_path, doc_tokens=0)
    base = make_tiny_llama(tmp_path / "base")
    coll = write_topic_collection(tmp_path / "topics")
    code = main(["train", "llm-reranker", "--collection", str(coll), "--base-model", str(base), "--out",
                 str(tmp_path / "x"), "--lora-targets", "q_proj,nope", "--max-steps", "1", "--cache-dir", "none"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and not (tmp_path / "x").exists()
    assert "'nope' is not a linear layer of this model" in err.splitlines()[-1] and "Traceback" not in err
