"""A local causal LM through transformers: GGUF files (dequantised by the ``gguf`` package), any local
model folder, or a model already in memory (e.g. a LoRA-tuned one: :meth:`TransformersBackend.from_model`).

Why transformers rather than llama.cpp: llama-cpp-python has no wheel for this platform (a source
build, not portable) and gives no attention maps, which in-context reranking needs; transformers reads
GGUF (``gguf_file=``) and offers batched forwards, generation with per-token scores and attentions
(``attn_implementation="eager"``, switched on only while attention is asked for, since SDPA is faster).

Precision: ``precision="auto"`` (default) runs every forward under bf16 autocast where the CPU has native
bf16 (AMX or AVX-512 BF16; :func:`rankstack.hardware.resolve_precision`, the rule the encoders and the
cross-encoder follow) and fp32 elsewhere, where bf16 is emulated and slower. The vocabulary projection (LM
head) stays fp32 under autocast: bf16 keeps 8 significant bits (a logit between 16 and 32 becomes a multiple
of 0.125), too coarse for yes/no log-odds that differ by tenths (Pearson with fp32 0.959 -> 0.996 with the
fp32 head, SmolLM2 on cranfield).
Measured per primitive (benchmarks/bench_llm_precision.py): BENCHMARKS.md. bf16 changes the numbers slightly, so a backend
running it carries ``+bf16`` in its :attr:`name`: cached answers and generated-query files of one precision
are never mistaken for the other's.

Batching: prompts are sorted by length and left-padded (position ids from the attention mask), so a
batch's next-token logits sit at its last position and only that position is projected to the
vocabulary (``logits_to_keep=1``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.errors import InputError, require
from rankstack.hardware import PRECISIONS, hf_offline, resolve_precision, torch_threads
from rankstack.llm.base import Generation, LLMBackend, Prompt, cut_at_stop, length_batches

__all__ = ["TransformersBackend", "check_gguf"]

GGUF_MAGIC = b"GGUF"
log = logging.getLogger(__name__)


def check_gguf(path: str | os.PathLike[str]) -> Path:
    """``path`` if it is a readable GGUF file, else one clear InputError (GGUF files start with b"GGUF")."""
    path = Path(path)
    if not path.is_file():
        raise InputError("model file not found", path=path, fix="give a .gguf file, a model folder or 'smollm2'")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != GGUF_MAGIC:
        raise InputError(f"not a GGUF file (starts with {magic!r}, expected b'GGUF')", path=path,
                         fix="give a .gguf model file, or a transformers model folder")
    return path


def _fp32_head(model: Any) -> None:
    """Make the model's LM head compute in fp32 whenever it runs under autocast (idempotent; outside autocast
    the head is unchanged, so fp32 users of the same model are unaffected). Why: see the module docstring."""
    import torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None or getattr(head, "_rankstack_fp32_head", False):
        return
    original = head.forward

    def forward(x: Any, *args: Any, **kwargs: Any) -> Any:
        if torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return original(x.float(), *args, **kwargs)
        return original(x, *args, **kwargs)

    head.forward = forward
    head._rankstack_fp32_head = True


def _weights_digest(model: Any) -> str:
    """A cheap content digest of a model's weights (shapes and sums), so a cache never mixes models."""
    import torch

    h = hashlib.sha256()
    with torch.no_grad():
        for name, p in model.named_parameters():
            h.update(name.encode())
            h.update(str(tuple(p.shape)).encode())
            h.update(np.float64(p.detach().double().sum().item()).tobytes())
    return h.hexdigest()[:16]


class TransformersBackend(LLMBackend):
    """An in-process ``AutoModelForCausalLM`` with its tokenizer.

    ``batch_size`` prompts per forward (and at most ``max_batch_tokens`` padded tokens); ``threads``
    torch threads while working (restored after); ``context_length`` defaults to the model's
    ``max_position_embeddings``; ``precision`` one of ``auto``/``fp32``/``bf16`` (module docstring),
    the one that runs in :attr:`precision_used` and why in :attr:`precision_reason`.
    """

    def __init__(self, model: Any, tokenizer: Any, name: str, context_length: int | None = None,
                 batch_size: int = 8, max_batch_tokens: int = 16384, threads: int | None = None,
                 precision: str = "auto") -> None:
        super().__init__()
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.precision_used, self.precision_reason = resolve_precision(precision, PRECISIONS)
        self.name = f"{name}+bf16" if self.precision_used == "bf16" else name
        if self.precision_used == "bf16":
            _fp32_head(self.model)
        log.info("LLM %s: %s (%s)", name, "bf16 autocast" if self.precision_used == "bf16" else "fp32",
                 self.precision_reason)
        cfg = getattr(model, "config", None)
        text_cfg = getattr(cfg, "get_text_config", lambda: cfg)() if cfg is not None else None
        self.context_length = int(context_length or getattr(text_cfg, "max_position_embeddings", 2048) or 2048)
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.threads = threads
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if self.pad_id is None:
            self.pad_id = 0
        eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None) or tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}
        if tokenizer.eos_token_id is not None:
            self.eos_ids.add(tokenizer.eos_token_id)

    # --- construction -------------------------------------------------------------------------------
    @classmethod
    def from_model(cls, model: Any, tokenizer: Any, name: str, **kwargs: Any) -> TransformersBackend:
        """Wrap a model already in memory (e.g. fine-tuned with LoRA). ``name`` is completed with a
        digest of the weights, so cached answers of another state of the model are never reused."""
        return cls(model, tokenizer, f"{name}@{_weights_digest(model)}", **kwargs)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], gguf_file: str | None = None,
                        name: str | None = None, **kwargs: Any) -> TransformersBackend:
        """Load a local model folder, or a GGUF file (``path`` the file, or the folder + ``gguf_file``)."""
        transformers = require("transformers", "llm", "local LLM backends")
        path = Path(path)
        if path.is_file() or gguf_file is not None:
            file = check_gguf(path / gguf_file if gguf_file else path)
            folder, gguf_file = str(file.parent), file.name
            require("gguf", "llm", "reading GGUF model files")
            from rankstack.storage import fingerprint

            ident = name or f"gguf:{file.name}:{fingerprint(file)[:16]}"
        else:
            if not (path / "config.json").is_file():
                raise InputError("not a model folder (no config.json) nor a GGUF file", path=path,
                                 fix="give a .gguf file, a transformers model folder, 'smollm2' or 'gemma3-270m'")
            from rankstack.storage import fingerprint

            folder, ident = str(path), name or f"hf:{path.name}:{fingerprint(path)[:16]}"
        extra = {"gguf_file": gguf_file} if gguf_file else {}
        with hf_offline(), torch_threads(kwargs.get("threads")):
            tokenizer = transformers.AutoTokenizer.from_pretrained(folder, **extra)
            model = transformers.AutoModelForCausalLM.from_pretrained(folder, attn_implementation="sdpa", **extra)
        return cls(model, tokenizer, ident, **kwargs)

    def _autocast(self) -> Any:
        """bf16 autocast for a forward when this backend runs bf16, else a no-op context."""
        import torch

        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision_used == "bf16")

    # --- text and tokens ----------------------------------------------------------------------------
    def render(self, prompt: Prompt) -> str:
        """The prompt as text: a Chat through the tokenizer's chat template (plain lines without one)."""
        if isinstance(prompt, str):
            return prompt
        msgs = [{"role": r, "content": c} for r, c in prompt.messages]
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        else:  # a base model: the messages as plain paragraphs
            text = "\n\n".join(c for _, c in prompt.messages) + "\n\n"
        return text + prompt.prefix

    def encode(self, prompt: Prompt) -> list[int]:
        special = isinstance(prompt, str) or not getattr(self.tokenizer, "chat_template", None)
        return list(self.tokenizer(self.render(prompt), add_special_tokens=special)["input_ids"])

    def count_tokens(self, texts: Sequence[Prompt]) -> list[int]:
        return [len(self.encode(t)) for t in texts]

    def truncate(self, texts: Sequence[str], max_tokens: int) -> list[str]:
        out = []
        for t in texts:
            ids = self.tokenizer(t, add_special_tokens=False)["input_ids"]
            out.append(t if len(ids) <= max_tokens else self.tokenizer.decode(ids[:max_tokens]))
        return out

    def candidate_tokens(self, candidates: Sequence[str]) -> list[int]:
        ids = []
        for c in candidates:
            tok = self.tokenizer(c, add_special_tokens=False)["input_ids"]
            if len(tok) != 1:
                raise InputError(f"candidate continuation {c!r} is {len(tok)} tokens for model {self.name!r}, "
                                 "not one", fix="use identifiers that are single tokens (letters, 'Yes'/'No')")
            ids.append(tok[0])
        return ids

    def _check_length(self, n: int, prompt: Prompt) -> None:
        if n > self.context_length:
            text = self.render(prompt)
            raise InputError(f"a prompt of {n} tokens exceeds the context length {self.context_length} of "
                             f"model {self.name!r} (prompt starts {text[:60]!r})",
                             fix="use a smaller window or fewer tokens per passage (max_passage_tokens)")

    def _padded(self, seqs: list[list[int]]):
        import torch

        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
            mask[i, width - len(s):] = 1
        pos = (mask.cumsum(1) - 1).clamp(min=0)
        return ids, mask, pos

    # --- primitives -----------------------------------------------------------------------------------
    def _next_token_logprobs(self, prompts: list[Prompt], token_ids: list[int]) -> tuple[np.ndarray, int]:
        import torch

        seqs = [self.encode(p) for p in prompts]
        for s, p in zip(seqs, prompts):
            self._check_length(len(s), p)
        out = np.empty((len(prompts), len(token_ids)))
        cand = torch.tensor(token_ids, dtype=torch.long)
        with torch_threads(self.threads), torch.inference_mode(), self._autocast():
            for idx in length_batches([len(s) for s in seqs], self.batch_size, self.max_batch_tokens):
                ids, mask, pos = self._padded([seqs[i] for i in idx])
                logits = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=1).logits
                logp = torch.log_softmax(logits[:, -1, :].float(), dim=-1)
                out[idx] = logp[:, cand].double().numpy()
        return out, sum(len(s) for s in seqs)

    def _continuation_logprobs(self, prompts: list[Prompt], continuations: list[str]) -> tuple[list[np.ndarray], int]:
        """One teacher-forced forward per batch; logits only for the continuation's positions (the
        vocabulary projection of the prompt's tokens would cost ~20% more for SmolLM2)."""
        import torch

        heads = [self.encode(p) for p in prompts]
        tails = [list(self.tokenizer(c, add_special_tokens=False)["input_ids"]) for c in continuations]
        seqs = [h + t for h, t in zip(heads, tails)]
        for s, p in zip(seqs, prompts):
            self._check_length(len(s), p)
        out: list[np.ndarray] = [np.zeros(0)] * len(prompts)
        with torch_threads(self.threads), torch.inference_mode(), self._autocast():
            for idx in length_batches([len(s) for s in seqs], self.batch_size, self.max_batch_tokens):
                ids, mask, pos = self._padded([seqs[i] for i in idx])  # left-padded: every row ends at -1
                keep = max(len(tails[i]) for i in idx) + 1
                logits = self.model(input_ids=ids, attention_mask=mask, position_ids=pos,
                                    logits_to_keep=keep).logits
                logp = torch.log_softmax(logits.float(), dim=-1)
                for row, i in enumerate(idx):
                    n = len(tails[i])
                    target = ids[row, -n:]
                    out[i] = logp[row, -n - 1:-1].gather(1, target[:, None])[:, 0].double().numpy()
        return out, sum(len(s) for s in seqs)

    def _generate(self, prompts: list[Prompt], max_new_tokens: int, temperature: float, seed: int,
                  stop: tuple[str, ...]) -> list[Generation]:
        import torch

        seqs = [self.encode(p) for p in prompts]
        for s, p in zip(seqs, prompts):
            self._check_length(len(s) + max_new_tokens, p)
        results: list[Generation | None] = [None] * len(prompts)
        with torch_threads(self.threads), torch.inference_mode(), torch.random.fork_rng(), self._autocast():
            torch.manual_seed(seed)
            for idx in length_batches([len(s) for s in seqs], self.batch_size, self.max_batch_tokens):
                ids, mask, _ = self._padded([seqs[i] for i in idx])
                start = time.perf_counter()
                sample = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0} \
                    if temperature > 0 else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
                out = self.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                          pad_token_id=self.pad_id, eos_token_id=sorted(self.eos_ids) or None,
                                          return_dict_in_generate=True, output_logits=True, **sample)
                took = (time.perf_counter() - start) / len(idx)
                new = out.sequences[:, ids.shape[1]:]
                logps = torch.stack([torch.log_softmax(lg.float(), -1) for lg in out.logits], 1) \
                    if out.logits else None
                for row, i in enumerate(idx):
                    toks = new[row].tolist()
                    n = next((k + 1 for k, t in enumerate(toks) if t in self.eos_ids), len(toks))
                    body = [t for t in toks[:n] if t not in self.eos_ids]
                    lps = tuple(float(logps[row, k, toks[k]]) for k in range(n)) if logps is not None else ()
                    text, _ = cut_at_stop(self.tokenizer.decode(body, skip_special_tokens=True), stop)
                    results[i] = Generation(text, lps, len(seqs[i]), n, took)
        return [r for r in results if r is not None]

    def _source_attention(self, ids: Any, s0: int, s1: int) -> Any:
        """``[s1 - s0, L]``: rows ``s0:s1`` of every layer's attention, summed over layers and heads.

        Why hooks: ``output_attentions=True`` keeps every layer's full ``[heads, L, L]`` map until the
        forward ends (30 layers x 9 heads x L^2 floats: 1.3 GB at 1,100 tokens for SmolLM2, ~100 GB at
        10,000); a forward hook on each attention module keeps only the query rows and drops the map.
        Models whose attention modules do not return their weights fall back to ``output_attentions``.
        """
        total: list[Any] = []

        def keep_rows(module, args, out):
            if isinstance(out, tuple) and len(out) > 1 and getattr(out[1], "dim", lambda: 0)() == 4:
                rows = out[1][0, :, s0:s1, :].float().sum(0)
                if total:
                    total[0] = total[0] + rows
                else:
                    total.append(rows)
                return (out[0], None) + tuple(out[2:])
            return out

        hooks = [m.register_forward_hook(keep_rows) for m in self.model.modules()
                 if type(m).__name__.endswith("Attention")]
        try:
            self.model(input_ids=ids, logits_to_keep=1)
        finally:
            for h in hooks:
                h.remove()
        if total:
            return total[0]
        out = self.model(input_ids=ids, output_attentions=True, logits_to_keep=1)
        acc = None
        for layer in out.attentions:  # [1, heads, L, L]
            rows = layer[0, :, s0:s1, :].float().sum(0)
            acc = rows if acc is None else acc + rows
        return acc

    def segment_attention(self, segments: Sequence[str], source: int) -> np.ndarray:
        """See :meth:`LLMBackend.segment_attention`. Segments are tokenised one by one (the first with
        the tokenizer's special tokens) so that each token belongs to exactly one segment."""
        import torch

        if not -len(segments) <= source < len(segments):
            raise InputError(f"source segment {source} out of range for {len(segments)} segments")
        source %= len(segments)
        ids: list[int] = []
        spans = []
        for k, seg in enumerate(segments):
            tok = self.tokenizer(seg, add_special_tokens=(k == 0))["input_ids"]
            spans.append((len(ids), len(ids) + len(tok)))
            ids.extend(tok)
        self._check_length(len(ids), "".join(segments))
        s0, s1 = spans[source]
        if s1 == s0:
            raise InputError("the attending segment (the query) is empty", fix="give a non-empty query")
        start = time.perf_counter()
        previous = getattr(self.model.config, "_attn_implementation", "sdpa")
        with torch_threads(self.threads), torch.inference_mode(), self._autocast():
            try:
                self.model.set_attn_implementation("eager")
                total = self._source_attention(torch.tensor([ids]), s0, s1)
            finally:
                self.model.set_attn_implementation(previous)
        per_token = total.mean(0).double().numpy()
        scores = np.array([per_token[a:b].sum() for a, b in spans])
        self.usage.add(prompt_tokens=len(ids), seconds=time.perf_counter() - start, calls=1)
        return scores
