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
           "load_causal_lm", "backend_for", "pointwise_prompts", "encode_prompts", "yes_no_ids", "yes_no_scores"]

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
# LLM pointwise adapters (prompts and scoring through the shared LLM backend, rankstack.llm)
def llm_base_path(name: str | os.PathLike[str] | None = None) -> Path:
    """``"smollm2"``/``"gemma3-270m"`` (packaged GGUFs), a ``.gguf`` file or a local model folder."""
    from rankstack.llm.models import NAMED_MODELS, model_file
    from rankstack.llm.transformers_backend import check_gguf

    name = DEFAULT_LLM if name is None else str(name)
    if name in NAMED_MODELS and name != "fake":
        return model_file(name)
    path = Path(name)
    if (path / "config.json").is_file():
        return path
    if path.is_dir():
        raise InputError("LLM base folder has no config.json", path=path,
                         fix="pass 'smollm2', a GGUF file or a local transformers causal-LM folder")
    return check_gguf(path)


def load_causal_lm(name: str | os.PathLike[str] | None = None) -> tuple[Any, Any, Path]:
    """``(model, tokenizer, path)`` in fp32 (a GGUF is dequantised by transformers + gguf), eval mode."""
    require("transformers", "llm", "LLM rerankers")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = llm_base_path(name)
    kw = {"gguf_file": path.name} if path.is_file() else {}
    folder = str(path.parent if path.is_file() else path)
    with hf_offline():
        tok = AutoTokenizer.from_pretrained(folder, **kw)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype="float32", attn_implementation="sdpa", **kw)
    model.eval()
    return model, tok, path


def backend_for(model: Any, tokenizer: Any, name: str = "llm-lora", threads: int | None = None,
                batch_size: int = 8, precision: str = "fp32") -> Any:
    """The shared transformers backend over an in-memory (LoRA-wrapped) model: prompts are rendered and
    scored exactly as every other LLM reranker renders and scores them. fp32 by default: an adapter is
    scored in the precision it was trained and validated in (the training forward is fp32)."""
    from rankstack.llm.transformers_backend import TransformersBackend

    return TransformersBackend.from_model(model, tokenizer, name, threads=threads, batch_size=batch_size,
                                          precision=precision)


def pointwise_prompts(backend: Any, query_texts: Sequence[str], doc_texts: Sequence[str], doc_tokens: int) -> list:
    """One chat prompt per pair, documents cut to ``doc_tokens`` tokens (by the backend's tokenizer)."""
    from rankstack.llm.base import Chat

    docs = backend.truncate(list(doc_texts), doc_tokens)
    return [Chat.user(PROMPT.format(query=q, document=d)) for q, d in zip(query_texts, docs)]


def encode_prompts(backend: Any, query_texts: Sequence[str], doc_texts: Sequence[str],
                   doc_tokens: int = 192) -> dict[str, Any]:
    """Left-padded token ids of the prompts, with position ids from the mask, for a training forward.

    Same tokens as the backend's scoring (``backend.encode``); left padding puts every answer position
    last, so ``logits_to_keep=1`` suffices, and explicit position ids make a prompt's score independent
    of its batch's padding.
    """
    import torch

    seqs = [backend.encode(p) for p in pointwise_prompts(backend, query_texts, doc_texts, doc_tokens)]
    width = max(len(x) for x in seqs)
    input_ids = torch.full((len(seqs), width), int(backend.pad_id), dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, x in enumerate(seqs):
        input_ids[i, width - len(x):] = torch.tensor(x, dtype=torch.long)
        mask[i, width - len(x):] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "position_ids": (mask.cumsum(-1) - 1).clamp(min=0)}


def yes_no_ids(backend: Any) -> tuple[int, int]:
    """Token ids of the answers "Yes" and "No" (one token each, or a clear error)."""
    yes, no = backend.candidate_tokens(["Yes", "No"])
    unk = getattr(backend.tokenizer, "unk_token_id", None)
    for word, tid in (("Yes", yes), ("No", no)):
        if unk is not None and tid == unk:
            raise InputError(f"the model's vocabulary has no token for the answer {word!r} (it reads as unknown)",
                             fix="use a chat model whose tokenizer has one-token Yes/No answers")
    return int(yes), int(no)


def yes_no_scores(model: Any, features: Mapping[str, Any], yes: int, no: int) -> Any:
    """logit(Yes) - logit(No) at the last position: a differentiable ``[N]`` tensor (for training).

    Equals log P(Yes) - log P(No), what the backend's ``next_token_logprobs`` gives at inference.
    """
    logits = model(**features, logits_to_keep=1, use_cache=False).logits[:, -1, :]
    return logits[:, yes].float() - logits[:, no].float()


class LlmPointwiseReranker(PairScorer):
    """Rerank with a causal LM's log P(Yes) - log P(No), optionally through a LoRA adapter.

    ``adapter``: a ``llm-pointwise`` adapter folder (its manifest names the base, which must match);
    without it, the zero-shot base ``model``. ``merge``: fold the adapter into the weights at load.
    ``doc_tokens``: document truncation (the adapter's own by default). ``threads``: torch threads
    for loading and scoring, restored after. Scoring goes through :mod:`rankstack.llm`'s
    ``TransformersBackend``, so its cost is in ``backend.usage``.
    """

    name = "llm_lora"

    def __init__(self, adapter: str | os.PathLike[str] | None = None, model: str | None = None,
                 documents: DocumentSource = None, merge: bool = True, doc_tokens: int | None = None,
                 batch_size: int = 8, threads: int | None = 2, depth: int | None = 100, combine: str | None = None,
                 alpha: float = 0.5, norm: str = "zscore", progress: bool = False, verify: bool = True,
                 _module: Any = None, _tokenizer: Any = None) -> None:
        super().__init__(documents=documents, depth=depth, batch_size=batch_size, combine=combine, alpha=alpha,
                         norm=norm, progress=progress)
        if doc_tokens is not None and (isinstance(doc_tokens, bool) or not isinstance(doc_tokens, int)
                                       or doc_tokens < 1):
            raise InputError(f"doc_tokens must be a positive integer, got {doc_tokens!r}")
        self.threads, self.manifest, self.adapter = threads, None, None if adapter is None else str(adapter)
        saved_tokens = None
        if _module is not None:
            net, tok = _module, _tokenizer
        else:
            with torch_threads(threads):
                if adapter is not None:
                    def load() -> tuple[Any, Any, dict]:
                        manifest = read_adapter(adapter, verify=verify)
                        _family(manifest, "llm-pointwise", adapter)
                        base, tok, path = load_causal_lm(model if model is not None else manifest["params"]["base_model"])
                        check_base(manifest, path, adapter)
                        return _attach(base, adapter, merge), tok, manifest

                    net, tok, self.manifest = read_consistently(adapter, load)
                    saved_tokens = int(self.manifest["params"]["doc_tokens"])
                else:
                    net, tok, _ = load_causal_lm(model)
        self.model, self.tokenizer = net, tok
        self.doc_tokens = int(doc_tokens or saved_tokens or 192)
        was_training = net.training  # the backend puts its model in eval mode: keep a model in training as it was
        self.backend = backend_for(net, tok, f"llm-lora:{self.adapter or model or DEFAULT_LLM}", threads=threads,
                                   batch_size=batch_size)
        net.train(was_training)
        yes_no_ids(self.backend)  # a tokenizer without one-token Yes/No answers fails here, not mid-run

    def pair_lengths(self, query_texts: Sequence[str], doc_texts: Sequence[str]) -> np.ndarray:
        return np.fromiter((len(q) + min(len(d), 6 * self.doc_tokens) for q, d in zip(query_texts, doc_texts)),
                           dtype=np.int64, count=len(query_texts))

    def score_pairs(self, query_texts: Sequence[str], doc_texts: Sequence[str]) -> np.ndarray:
        was_training = self.model.training
        self.model.eval()
        try:
            lp = self.backend.next_token_logprobs(pointwise_prompts(self.backend, query_texts, doc_texts,
                                                                    self.doc_tokens), ["Yes", "No"])
        finally:
            self.model.train(was_training)
        return lp[:, 0] - lp[:, 1]


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
