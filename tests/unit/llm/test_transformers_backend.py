"""The transformers backend on a tiny random-init Llama with a word-level tokenizer and a chat template:
left-padded batches equal single prompts, generation, seeded sampling, attention sums, name digests,
GGUF checks."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from rankstack.errors import InputError
from rankstack.hardware import bf16_support
from rankstack.llm.base import Chat
from rankstack.llm.models import load_backend
from rankstack.llm.transformers_backend import TransformersBackend, check_gguf

WORDS = ("yes no a b c d passage query the cats purr dogs bark is relevant answer [ ] > ? . : , "
         "user assistant system").split()
TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture(scope="module")
def tiny(one_torch_thread):
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    special = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"]
    vocab = {t: i for i, t in enumerate(special + ["Yes", "No", "A", "B"] + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                                   eos_token="<|im_end|>", additional_special_tokens=["<|im_start|>"])
    fast.chat_template = TEMPLATE
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
                      eos_token_id=vocab["<|im_end|>"], pad_token_id=0)
    model = LlamaForCausalLM(cfg)
    return TransformersBackend.from_model(model, fast, name="tiny", batch_size=4, precision="fp32")


def test_batched_logprobs_equal_single_prompts(tiny):
    prompts = [Chat.user("is the passage relevant ?"), "cats purr", Chat.user("dogs bark . a b c d", prefix="[")]
    batch = tiny.next_token_logprobs(prompts, ["Yes", "No", "A"])
    single = np.vstack([tiny.next_token_logprobs([p], ["Yes", "No", "A"]) for p in prompts])
    np.testing.assert_allclose(batch, single, atol=1e-4)
    assert np.all(batch < 0)


def test_chat_template_and_prefix_are_used(tiny):
    text = tiny.render(Chat.user("cats purr", prefix="["))
    assert text.endswith("<|im_start|>assistant\n[") and "<|im_start|>user\ncats purr<|im_end|>" in text


def test_generation_greedy_batched_and_seeded(tiny):
    prompts = [Chat.user("cats purr"), Chat.user("dogs bark is the answer")]
    batch = tiny.generate(prompts, max_new_tokens=5)
    single = [tiny.generate([p], max_new_tokens=5)[0] for p in prompts]
    assert [g.text for g in batch] == [g.text for g in single]
    for g in batch:
        assert 1 <= g.generated_tokens <= 5 and len(g.token_logprobs) == g.generated_tokens
        assert g.prompt_tokens == tiny.count_tokens([prompts[batch.index(g)]])[0]
    s1 = tiny.generate(prompts[:1], max_new_tokens=6, temperature=1.0, seed=7)[0]
    s2 = tiny.generate(prompts[:1], max_new_tokens=6, temperature=1.0, seed=7)[0]
    assert s1.text == s2.text and s1.token_logprobs == s2.token_logprobs
    assert tiny.usage.generated_tokens > 0


def test_segment_attention_sums_to_layers_times_heads(tiny):
    segs = ["passage cats purr", " passage dogs bark", " query cats"]
    att = tiny.segment_attention(segs, 2)
    assert att.shape == (3,) and np.all(att >= 0)
    assert att.sum() == pytest.approx(2 * 2, rel=1e-4)  # each row of each head of each layer sums to 1


def test_attention_hooks_equal_output_attentions(tiny):
    import torch

    ids = torch.tensor([tiny.tokenizer("passage cats purr query cats", add_special_tokens=True)["input_ids"]])
    previous = tiny.model.config._attn_implementation
    tiny.model.set_attn_implementation("eager")
    try:
        with torch.inference_mode():
            hooked = tiny._source_attention(ids, 3, 5)
            full = tiny.model(input_ids=ids, output_attentions=True).attentions
    finally:
        tiny.model.set_attn_implementation(previous)
    expect = sum(layer[0, :, 3:5, :].float().sum(0) for layer in full)
    torch.testing.assert_close(hooked, expect)


def test_candidate_of_several_tokens_and_context_errors(tiny):
    with pytest.raises(InputError, match="is 2 tokens"):
        tiny.next_token_logprobs(["cats"], ["cats purr"])
    with pytest.raises(InputError, match="exceeds the context length 128"):
        tiny.next_token_logprobs(["cats " * 200], ["Yes"])


def test_name_digest_follows_the_weights(tiny):
    import torch

    again = TransformersBackend.from_model(tiny.model, tiny.tokenizer, name="tiny", precision="fp32")
    assert again.name == tiny.name and tiny.name.startswith("tiny@")
    with torch.no_grad():
        p = next(tiny.model.parameters())
        p.add_(1.0)
        changed = TransformersBackend.from_model(tiny.model, tiny.tokenizer, name="tiny", precision="fp32").name
        p.sub_(1.0)
    assert changed != tiny.name


def test_a_file_that_is_not_gguf(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(InputError, match=r"model.gguf: not a GGUF file"):
        check_gguf(bad)
    with pytest.raises(InputError, match="not a GGUF file"):
        load_backend(str(bad))
    with pytest.raises(InputError, match="neither a known name nor an existing file"):
        load_backend(str(tmp_path / "missing"))


def test_continuation_logprobs_are_teacher_forced_and_batch_independent(tiny):
    import torch

    prompts = [Chat.user("passage cats purr", prefix="query"), Chat.user("dogs bark . a b c d", prefix=":"),
               "the cats"]
    conts = [" cats purr", " dogs", " purr ? the answer is yes"]
    batch = tiny.continuation_logprobs(prompts, conts)
    single = [tiny.continuation_logprobs([p], [c])[0] for p, c in zip(prompts, conts)]
    assert [len(v) for v in batch] == [2, 1, 6]
    for b, s in zip(batch, single):
        np.testing.assert_allclose(b, s, atol=1e-4)
    # by hand: one unpadded forward of prompt + continuation, the log-softmax at each continuation token
    head, tail = tiny.encode(prompts[2]), tiny.tokenizer(conts[2], add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        logits = tiny.model(input_ids=torch.tensor([head + tail])).logits[0].float()
    logp = torch.log_softmax(logits, -1)
    manual = [float(logp[len(head) + k - 1, t]) for k, t in enumerate(tail)]
    np.testing.assert_allclose(batch[2], manual, atol=1e-4)
    assert all(np.all(v < 0) for v in batch)


def test_continuation_logprobs_bad_input(tiny):
    with pytest.raises(InputError, match="one continuation per prompt"):
        tiny.continuation_logprobs(["cats"], [" a", " b"])
    with pytest.raises(InputError, match="continuation 1 is empty"):
        tiny.continuation_logprobs(["cats", "dogs"], [" a", "  "])
    with pytest.raises(InputError, match="exceeds the context length"):
        tiny.continuation_logprobs(["cats " * 120], [" purr " * 20])
    assert tiny.continuation_logprobs([], []) == []


PAIRS = ([Chat.user("passage cats purr", prefix="query"), Chat.user("dogs bark . a b c d", prefix=":"), "the cats"],
         [" cats purr", " dogs", " purr ? the answer is yes"])


@pytest.mark.precision
def test_bf16_request_runs_bf16_or_falls_back_to_fp32(tiny, caplog):
    """Holds on AMX/AVX-512 BF16 CPUs (bf16 autocast runs) and on AVX2-only CPUs or with RANKSTACK_BF16=0 (fp32)."""
    native, why = bf16_support()
    with caplog.at_level(logging.INFO, logger="rankstack"):
        bf16 = TransformersBackend.from_model(tiny.model, tiny.tokenizer, name="tiny", batch_size=4, precision="bf16")
    ref = tiny.continuation_logprobs(*PAIRS)
    got = bf16.continuation_logprobs(*PAIRS)
    ref_next = tiny.next_token_logprobs(PAIRS[0], ["Yes", "No"])
    got_next = bf16.next_token_logprobs(PAIRS[0], ["Yes", "No"])
    gens = bf16.generate([Chat.user("cats purr")], max_new_tokens=4)
    assert len(gens) == 1 and len(gens[0].token_logprobs) == gens[0].generated_tokens
    # an fp32 backend over the same model is unaffected by the bf16 one (its fp32 LM head acts only under autocast)
    for r, again in zip(ref, tiny.continuation_logprobs(*PAIRS)):
        np.testing.assert_array_equal(again, r)
    if native:
        import torch

        assert bf16.precision_used == "bf16" and "bf16 autocast" in caplog.text
        with torch.autocast("cpu", dtype=torch.bfloat16):  # the LM head runs fp32: logits are not rounded to bf16
            assert tiny.model.get_output_embeddings()(torch.ones(1, 32)).dtype == torch.float32
        # the name tells the precision apart, so the answer cache and generated-query files never mix them
        plain = TransformersBackend.from_model(tiny.model, tiny.tokenizer, name="tiny", precision="fp32").name
        assert bf16.name == plain + "+bf16"
        for r, g in zip(ref, got):
            np.testing.assert_allclose(g, r, atol=0.05)
        np.testing.assert_allclose(got_next, ref_next, atol=0.05)
        assert not all(np.array_equal(r, g) for r, g in zip(ref, got))  # bf16 really ran: rounding differs
    else:
        assert bf16.precision_used == "fp32" and "+bf16" not in bf16.name
        assert "running fp32" in caplog.text and why in caplog.text  # the fallback says why
        for r, g in zip(ref, got):
            np.testing.assert_array_equal(g, r)


@pytest.mark.precision
def test_auto_precision_follows_the_override(tiny, monkeypatch):
    monkeypatch.setenv("RANKSTACK_BF16", "0")
    off = TransformersBackend.from_model(tiny.model, tiny.tokenizer, name="tiny", precision="auto")
    assert off.precision_used == "fp32" and not off.name.endswith("+bf16")
    monkeypatch.setenv("RANKSTACK_BF16", "1")
    on = TransformersBackend.from_model(tiny.model, tiny.tokenizer, name="tiny", precision="auto")
    assert on.precision_used == "bf16" and on.name == off.name + "+bf16"
    assert TransformersBackend.from_model(tiny.model, tiny.tokenizer, name="tiny",
                                          precision="fp32").precision_used == "fp32"


def test_unknown_precision_is_one_clear_error(tiny):
    with pytest.raises(InputError, match="unknown precision 'fp16'.*auto, fp32, bf16"):
        TransformersBackend.from_model(tiny.model, tiny.tokenizer, name="tiny", precision="fp16")
    with pytest.raises(InputError, match="unknown precision 'half'"):
        load_backend("fake", precision="half")


def test_loaded_backends_are_memoised_per_precision_and_override(tiny, tmp_path, monkeypatch):
    folder = tmp_path / "tiny-llama"
    tiny.model.save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)
    monkeypatch.setenv("RANKSTACK_BF16", "0")
    off = load_backend(str(folder), cache=False, precision="auto")
    assert off.precision_used == "fp32" and load_backend(str(folder), cache=False, precision="auto") is off
    monkeypatch.setenv("RANKSTACK_BF16", "1")  # "auto" now means bf16: not the memoised fp32 backend
    on = load_backend(str(folder), cache=False, precision="auto")
    assert on is not off and on.precision_used == "bf16" and on.name == off.name + "+bf16"
    assert load_backend(str(folder), cache=False, precision="fp32").precision_used == "fp32"
