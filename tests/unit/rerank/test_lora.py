"""LoRA adapters of LLM pointwise rerankers (rerank/lora.py) on a tiny random LlamaConfig causal LM built
here: yes/no scoring through the shared backend, the adapter artefact (save -> load identical, merge within
1e-5, tampered or foreign base refused in one line), and bad options refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rankstack.errors import InputError

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

SPECIAL = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"]
WORDS = ("Query Document Is the document relevant to query ? Answer Yes or No : . , user assistant system why do "
         "cats purr dogs bark lions tigers fish swim parrots sing goldfish bowls canines loyal felines wild birds "
         "mimic water large human speech small domesticated of in and a is that can").split()
TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def make_tiny_llama(folder: Path, seed: int = 0, yes_no: bool = True) -> Path:
    """A random-init 2-layer Llama with a word-level tokenizer and a ChatML-like chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    words = [w for w in dict.fromkeys(WORDS) if yes_no or w not in ("Yes", "No")]
    vocab = {t: i for i, t in enumerate(SPECIAL + words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<|im_end|>",
                                   additional_special_tokens=["<|im_start|>"])
    fast.chat_template = TEMPLATE
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=False, pad_token_id=0, eos_token_id=3, bos_token_id=2)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    """Shared fixture in tests/conftest.py."""


@pytest.fixture(scope="module")
def llm_adapter(tmp_path_factory):
    """A tiny Llama base and a LoRA adapter over it with non-zero B matrices (as after training)."""
    from rankstack.rerank.lora import load_causal_lm, save_adapter
    from rankstack.train.lora import LoraSettings, add_lora

    tmp = tmp_path_factory.mktemp("llm")
    base = make_tiny_llama(tmp / "base")
    model, _, path = load_causal_lm(str(base))
    torch.manual_seed(1)
    peft_model = add_lora(model, LoraSettings(rank=4, dropout=0.0, targets=("q_proj", "v_proj")), "CAUSAL_LM")
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    save_adapter(peft_model, tmp / "adapter", family="llm-pointwise", base_model=str(base), base_path=path,
                 params={"doc_tokens": 16})
    return base, tmp / "adapter"


Q = ["why do cats purr", "why do cats purr", "dogs bark", "fish swim in water"]
D = ["cats purr and purr", "dogs bark", "lions and tigers are large wild felines of the water", "fish swim"]


def test_llm_adapter_save_load_identical_and_merge_same(llm_adapter):
    from rankstack.rerank.lora import LlmPointwiseReranker

    base, adapter = llm_adapter
    a = LlmPointwiseReranker(adapter, merge=False, threads=1).score(Q, D)
    b = LlmPointwiseReranker(adapter, merge=False, threads=1).score(Q, D)
    merged = LlmPointwiseReranker(adapter, merge=True, threads=1)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(merged.score(Q, D), a, atol=1e-5, rtol=0)
    assert merged.doc_tokens == 16 and np.ptp(a) > 0
    zero_shot = LlmPointwiseReranker(None, model=str(base), threads=1).score(Q, D)
    assert np.max(np.abs(zero_shot - a)) > 1e-4  # the adapter changes the scores
    assert merged.backend.usage.prompt_tokens > 0  # scored through the shared backend, with its accounting


def test_training_forward_equals_backend_scores(llm_adapter):
    """The differentiable training forward and the backend's log P(Yes) - log P(No) agree, whatever the padding."""
    from rankstack.rerank.lora import LlmPointwiseReranker, encode_prompts, yes_no_ids, yes_no_scores

    _, adapter = llm_adapter
    r = LlmPointwiseReranker(adapter, merge=False, threads=1)
    yes, no = yes_no_ids(r.backend)
    with torch.no_grad():
        together = yes_no_scores(r.model, encode_prompts(r.backend, Q, D, 16), yes, no).numpy()
        alone = [float(yes_no_scores(r.model, encode_prompts(r.backend, [q], [d], 16), yes, no)) for q, d in zip(Q, D)]
    np.testing.assert_allclose(together, r.score(Q, D), atol=1e-4)
    np.testing.assert_allclose(together, alone, atol=1e-4)


def test_registered_llm_lora_reranks_a_run(llm_adapter):
    from rankstack.registry import build
    from rankstack.types import Queries, Run

    _, adapter = llm_adapter
    docs = {f"d{i}": t for i, t in enumerate(D)}
    stage = build({"name": "llm_lora", "args": {"adapter": str(adapter), "threads": 1}})
    stage.documents, stage._lookup = docs, lambda ids: [docs[i] for i in ids]
    run = Run.from_dict({"q1": {f"d{i}": float(4 - i) for i in range(4)}}, queries=Queries(("q1",), (Q[0],)))
    out = stage(run)
    assert sorted(out.docids.tolist()) == sorted(docs) and len(out) == 4
    with pytest.raises(InputError, match="llm_lora needs an adapter"):
        build({"name": "llm_lora", "args": {}})


def test_foreign_base_tampered_adapter_and_wrong_family_are_refused(llm_adapter, tmp_path):
    from rankstack.rerank.cross_encoder import CrossEncoderReranker
    from rankstack.rerank.lora import LlmPointwiseReranker

    base, adapter = llm_adapter
    other = make_tiny_llama(tmp_path / "other", seed=3)
    with pytest.raises(InputError, match="was trained on base") as err:
        LlmPointwiseReranker(adapter, model=str(other), threads=1)
    assert "\n" not in str(err.value) and "fix:" in str(err.value)
    copy = tmp_path / "copy"
    shutil.copytree(adapter, copy)
    cfg = json.loads((copy / "adapter_config.json").read_text())
    cfg["r"] = 2
    (copy / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match="checksum of 'adapter_config.json' does not match"):
        LlmPointwiseReranker(copy, threads=1)
    with pytest.raises(InputError, match="is a 'llm-pointwise' adapter, not a 'cross-encoder' one"):
        CrossEncoderReranker(str(adapter))


def test_bad_options_are_refused(llm_adapter, tmp_path):
    from rankstack.rerank.lora import LlmPointwiseReranker, llm_base_path, load_causal_lm
    from rankstack.train.lora import LoraSettings, add_lora

    base, adapter = llm_adapter
    with pytest.raises(InputError, match="LoRA rank must be a positive integer"):
        LoraSettings(rank=0)
    with pytest.raises(InputError, match="'q_prj' is not a linear layer of this model"):
        add_lora(load_causal_lm(str(base))[0], LoraSettings(rank=2, targets=("q_prj",)), "CAUSAL_LM")
    with pytest.raises(InputError, match="doc_tokens must be a positive integer"):
        LlmPointwiseReranker(adapter, doc_tokens=0, threads=1)
    no_yes = make_tiny_llama(tmp_path / "noyes", yes_no=False)
    with pytest.raises(InputError, match="no token for the answer 'Yes'"):
        LlmPointwiseReranker(None, model=str(no_yes), threads=1)
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"not a gguf file")
    with pytest.raises(InputError, match="not a GGUF file"):
        llm_base_path(fake)
