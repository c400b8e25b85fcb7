"""ColBERT token encoder: a BERT-style encoder plus a linear projection to small, unit-length token vectors.

Why late interaction ("ColBERT: Efficient and Effective Passage Search via Contextualized Late
Interaction over BERT", Khattab & Zaharia, SIGIR 2020): documents are encoded offline into one vector
per token, queries into one vector per token, and a pair is scored by **MaxSim** -- the sum over query
tokens of the best inner product with any document token. It keeps token-level matching (closer to a
cross-encoder than one pooled vector) while documents are encoded once.

Taken from the paper: a linear layer (no bias) from the hidden size to ``dim`` (128), L2-normalised
token vectors, queries padded with ``[MASK]`` tokens to a fixed ``query_maxlen`` (32) -- *query
augmentation*: the masks are not attended to but their output vectors take part in MaxSim, a soft,
learned query expansion -- and punctuation (and padding) tokens of documents skipped. The ``[Q]``/``[D]``
marker tokens (``[unused0]``/``[unused1]``) are optional (``markers``, off by default: in the
pretrained all-MiniLM-L6-v2 they are untrained embeddings, and our default training adapts only the
projection).

The encoder-side token states of the corpus (before the projection) are cached by (encoder
fingerprint, corpus checksum) in the context's cache folder, so an untrained and a trained projection
over the same frozen encoder share one encoding pass; the projection is applied at index time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import string
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.encode.base import length_sorted_batches, texts_checksum
from rankstack.errors import InputError, require
from rankstack.hardware import hf_offline, resolve_precision, torch_threads

__all__ = ["ColBERTEncoder", "maxsim", "maxsim_flat", "maxsim_torch", "KIND", "FORMAT_VERSION", "PROJECTION_FILE",
           "cached_doc_states", "project_states"]

log = logging.getLogger(__name__)

KIND = "colbert-model"
FORMAT_VERSION = 1
PROJECTION_FILE = "colbert_linear.safetensors"
STATES_KIND = "colbert-token-states"
STATES_FORMAT = 1


# ---------------------------------------------------------------------------------------------
# MaxSim (Khattab & Zaharia 2020, eq. 3): sum over query tokens of the max inner product
def maxsim(q: np.ndarray, d: np.ndarray, d_mask: np.ndarray | None = None) -> np.ndarray:
    """MaxSim of one query ``q [Lq, dim]`` against padded documents ``d [N, Ld, dim]`` -> ``[N]``.

    Padding positions (``d_mask`` False) never win the max; a document without any token scores 0.
    """
    sims = np.einsum("qk,nlk->nql", q, d)
    if d_mask is not None:
        sims = np.where(d_mask[:, None, :], sims, -np.inf)
    best = sims.max(axis=2) if sims.shape[2] else np.full(sims.shape[:2], -np.inf)
    best = np.where(np.isfinite(best), best, 0.0)
    return best.sum(axis=1)


def maxsim_flat(q: np.ndarray, vectors: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """MaxSim of ``q [Lq, dim]`` against documents stored flat: ``vectors [T, dim]`` with document ``i``
    at rows ``offsets[i]:offsets[i+1]`` -> ``[N]`` (float64). Empty documents score 0."""
    n = len(offsets) - 1
    out = np.zeros(n, dtype=np.float64)
    if n == 0 or len(vectors) == 0:
        return out
    sims = np.asarray(vectors @ np.asarray(q, dtype=vectors.dtype).T, dtype=np.float32)  # [T, Lq]
    lengths = np.diff(offsets)
    nonempty = np.flatnonzero(lengths > 0)
    if len(nonempty):
        best = np.maximum.reduceat(sims, offsets[nonempty], axis=0)  # [n_nonempty, Lq]
        out[nonempty] = best.sum(axis=1, dtype=np.float64)
    return out


def maxsim_torch(q: Any, d: Any, d_mask: Any) -> Any:
    """All-pairs MaxSim in torch: ``q [B, Lq, k]``, ``d [N, Ld, k]``, ``d_mask [N, Ld]`` -> ``[B, N]``."""
    import torch

    sims = torch.einsum("bqk,nlk->bnql", q, d)
    sims = sims.masked_fill(~d_mask.bool()[None, :, None, :], -1e4)
    return sims.max(dim=3).values.sum(dim=2)


def project_states(states: np.ndarray, weight: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Token states ``[T, hidden]`` -> unit vectors ``[T, dim]`` float32 through ``weight [dim, hidden]``."""
    out = np.empty((len(states), weight.shape[0]), dtype=np.float32)
    w = np.ascontiguousarray(weight.T, dtype=np.float32)
    for s in range(0, len(states), chunk):
        part = np.asarray(states[s:s + chunk], dtype=np.float32) @ w
        norms = np.linalg.norm(part, axis=1, keepdims=True)
        out[s:s + chunk] = part / np.maximum(norms, 1e-12)
    return out


# ---------------------------------------------------------------------------------------------
def _module_class():
    import torch

    class ColBERTModule(torch.nn.Module):
        """``bert`` (any ``AutoModel``) + ``linear`` (hidden -> dim, no bias), as in ColBERT."""

        def __init__(self, bert: Any, dim: int) -> None:
            super().__init__()
            self.bert = bert
            self.linear = torch.nn.Linear(bert.config.hidden_size, dim, bias=False)

        def states(self, features: dict[str, Any]) -> Any:
            return self.bert(input_ids=features["input_ids"], attention_mask=features["attention_mask"]).last_hidden_state

        def project(self, states: Any) -> Any:
            return torch.nn.functional.normalize(self.linear(states.float()), p=2, dim=-1)

    return ColBERTModule


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InputError(f"colbert: {name} must be an integer >= {low}, got {value!r}")
    return value


class ColBERTEncoder:
    """Query and document token vectors. ``model``: ``"minilm"`` (all-MiniLM-L6-v2 + a seeded random
    projection: untrained), a saved ColBERT folder (verified against its manifest), or any local
    transformers encoder folder (new projection).

    ``threads``: torch threads for encoding calls only; ``precision``: ``auto`` (bf16 autocast where
    the CPU has native bf16) or ``fp32``.
    """

    def __init__(self, model: str | os.PathLike[str] = "minilm", dim: int = 128, query_maxlen: int = 32,
                 doc_maxlen: int = 180, markers: bool = False, seed: int = 0, threads: int | None = None,
                 batch_size: int = 32, precision: str = "auto", progress: bool | None = None,
                 verify: bool = True) -> None:
        require("transformers", "dense", "ColBERT encoders")
        import torch
        from transformers import AutoModel, AutoTokenizer

        from rankstack.encode.sentence_transformers import minilm_path

        self.threads = None if threads is None else _check_int("threads", threads, 1)
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.precision = resolve_precision(precision, ("auto", "fp32", "bf16"))[0]
        self.progress = progress
        self.manifest: dict[str, Any] | None = None
        path = minilm_path() if str(model) == "minilm" else Path(model).expanduser()
        if not (path / "config.json").is_file():
            raise InputError("colbert: model folder has no config.json", path=path,
                             fix="pass 'minilm', a folder from 'rankstack train colbert', or a transformers folder")
        projection = None
        if (path / "manifest.json").is_file():
            from rankstack.storage import read_manifest

            self.manifest = read_manifest(path, KIND, (FORMAT_VERSION,), verify=verify)
            p = self.manifest["params"]
            dim, query_maxlen, doc_maxlen, markers = p["dim"], p["query_maxlen"], p["doc_maxlen"], p["markers"]
            projection = path / PROJECTION_FILE
        self.dim = _check_int("dim", dim, 1)
        self.query_maxlen = _check_int("query_maxlen", query_maxlen, 4)
        self.doc_maxlen = _check_int("doc_maxlen", doc_maxlen, 4)
        self.markers = bool(markers)
        self.path = path
        self.base_model = "all-MiniLM-L6-v2" if str(model) == "minilm" else str(path)
        if self.manifest is not None:
            self.base_model = self.manifest["params"].get("base_model", self.base_model)
        import transformers

        level = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()  # the unused pooler weights are expected
        try:
            with hf_offline(), torch_threads(self.threads):
                self.tokenizer = AutoTokenizer.from_pretrained(str(path))
                bert = AutoModel.from_pretrained(str(path), add_pooling_layer=False) \
                    if _is_bert(path) else AutoModel.from_pretrained(str(path))
        finally:
            transformers.logging.set_verbosity(level)
        limit = getattr(bert.config, "max_position_embeddings", None)
        if limit and max(self.query_maxlen, self.doc_maxlen) > limit:
            raise InputError(f"colbert: query_maxlen/doc_maxlen exceed the model's {limit} positions",
                             fix=f"use lengths <= {limit}")
        with torch.random.fork_rng(devices=[]):  # seeded init, no global RNG side effect
            torch.manual_seed(seed)
            self.module = _module_class()(bert, self.dim)
        if projection is not None:
            from safetensors.torch import load_file

            self.module.linear.load_state_dict(load_file(str(projection)))
        self.module.eval()
        self._skip = self._skiplist()
        self.seed = seed

    # identity ----------------------------------------------------------------------------
    @property
    def states_id(self) -> str:
        """Names the encoder's current weights (a hash of the tensors, not of files: a saved and reloaded
        model keeps its id) and the document-side settings; the key of the corpus token-state cache."""
        h = hashlib.sha256()
        for name, tensor in sorted(self.module.bert.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().float().contiguous().numpy().tobytes())
        h.update(str(len(self.tokenizer)).encode())
        return f"colbert-states:{h.hexdigest()[:16]}:d{self.doc_maxlen}:m{int(self.markers)}"

    @property
    def encoder_id(self) -> str:
        """Names the encoder weights *and* the projection (an index refuses any other encoder)."""
        h = hashlib.sha256(self.states_id.encode())
        h.update(self.projection_weight().tobytes())
        h.update(f"q{self.query_maxlen}".encode())
        return f"colbert:{h.hexdigest()[:16]}"

    def projection_weight(self) -> np.ndarray:
        return self.module.linear.weight.detach().float().numpy().copy()

    def describe(self) -> dict[str, Any]:
        return {"encoder_id": self.encoder_id, "states_id": self.states_id, "dim": self.dim,
                "query_maxlen": self.query_maxlen, "doc_maxlen": self.doc_maxlen, "markers": self.markers,
                "base_model": self.base_model, "precision": self.precision, "seed": self.seed}

    # tokenisation ------------------------------------------------------------------------
    def _skiplist(self) -> set[int]:
        ids = {self.tokenizer.pad_token_id}
        for symbol in string.punctuation:
            ids.update(self.tokenizer.encode(symbol, add_special_tokens=False)[:1])
        return {int(i) for i in ids if i is not None and i != self.tokenizer.unk_token_id}

    def _marker(self, which: str) -> int | None:
        if not self.markers:
            return None
        tid = self.tokenizer.convert_tokens_to_ids("[unused0]" if which == "q" else "[unused1]")
        if tid is None or tid == self.tokenizer.unk_token_id:
            raise InputError("colbert: markers need [unused0]/[unused1] tokens in the vocabulary",
                             fix="use markers=False with this tokenizer")
        return int(tid)

    def tokenize(self, texts: Sequence[str], is_query: bool) -> dict[str, Any]:
        """Token ids (``[CLS] ([Q]|[D]) text [SEP]``) as tensors. Queries are padded with ``[MASK]``
        to ``query_maxlen`` (attention mask 0 on the masks: they read the query but are not read)."""
        import torch

        texts = _check_texts(texts)
        marker = self._marker("q" if is_query else "d")
        maxlen = self.query_maxlen if is_query else self.doc_maxlen
        room = maxlen - (1 if marker is not None else 0)
        # documents pad to a multiple of 32 tokens: few distinct shapes, so oneDNN (bf16) reuses its kernels
        # instead of compiling one per batch length (measured ~15x slower encoding without it)
        enc = self.tokenizer(texts, truncation=True, max_length=room, padding="max_length" if is_query else "longest",
                             return_tensors="pt", return_token_type_ids=False)
        ids, att = enc["input_ids"], enc["attention_mask"]
        extra = min(room, -(-ids.shape[1] // 32) * 32) - ids.shape[1]
        if not is_query and extra > 0:
            ids = torch.nn.functional.pad(ids, (0, extra), value=int(self.tokenizer.pad_token_id))
            att = torch.nn.functional.pad(att, (0, extra), value=0)
        if marker is not None:
            col = torch.full((len(texts), 1), marker, dtype=ids.dtype)
            ids = torch.cat([ids[:, :1], col, ids[:, 1:]], dim=1)
            att = torch.cat([att[:, :1], torch.ones_like(col), att[:, 1:]], dim=1)
        if is_query:
            ids = ids.masked_fill(att == 0, int(self.tokenizer.mask_token_id))
        return {"input_ids": ids, "attention_mask": att}

    def doc_token_mask(self, features: dict[str, Any]) -> Any:
        """True for document tokens that take part in MaxSim: not padding, not punctuation."""
        import torch

        ids = features["input_ids"]
        keep = features["attention_mask"].bool()
        skip = torch.tensor(sorted(self._skip), dtype=ids.dtype)
        return keep & ~torch.isin(ids, skip)

    # torch-level (training) --------------------------------------------------------------------
    def query_embed(self, features: dict[str, Any], states: Any = None) -> Any:
        """``[B, query_maxlen, dim]`` unit vectors (all positions, masks included)."""
        return self.module.project(self.module.states(features) if states is None else states)

    def doc_embed(self, features: dict[str, Any], states: Any = None) -> tuple[Any, Any]:
        """``([B, Ld, dim]`` unit vectors, ``[B, Ld]`` token mask)."""
        vecs = self.module.project(self.module.states(features) if states is None else states)
        return vecs, self.doc_token_mask(features)

    def _autocast(self):
        import contextlib

        import torch

        return torch.autocast("cpu", dtype=torch.bfloat16) if self.precision == "bf16" else contextlib.nullcontext()

    # NumPy-level (inference) -------------------------------------------------------------------
    def query_states(self, texts: Sequence[str]) -> np.ndarray:
        """Encoder states of queries ``[n, query_maxlen, hidden]`` float32 (before the projection)."""
        import torch

        texts = _check_texts(texts)
        hidden = self.module.bert.config.hidden_size
        out = np.zeros((len(texts), self.query_maxlen, hidden), dtype=np.float32)
        with torch_threads(self.threads), torch.inference_mode(), self._autocast():
            for s in range(0, len(texts), self.batch_size):
                feats = self.tokenize(texts[s:s + self.batch_size], is_query=True)
                out[s:s + self.batch_size] = self.module.states(feats).float().numpy()
        return out

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Query token vectors ``[n, query_maxlen, dim]`` float32, unit length."""
        states = self.query_states(texts)
        if not len(states):
            return np.zeros((0, self.query_maxlen, self.dim), dtype=np.float32)
        flat = project_states(states.reshape(-1, states.shape[-1]), self.projection_weight())
        return flat.reshape(len(states), self.query_maxlen, self.dim)

    def doc_states(self, texts: Sequence[str], progress: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Encoder states of documents' kept tokens, flat: ``(states [T, hidden] float16, offsets [n+1])``."""
        import torch
        from tqdm.auto import tqdm

        texts = _check_texts(texts)
        per_doc: list[np.ndarray | None] = [None] * len(texts)
        show = progress if progress is not None else self.progress
        start = time.perf_counter()
        with torch_threads(self.threads), torch.inference_mode(), self._autocast(), \
                tqdm(total=len(texts), unit="doc", desc="colbert encode", disable=not (show if show is not None
                                                                                        else len(texts) >= 512)) as bar:
            for idx in length_sorted_batches(texts, self.batch_size):
                feats = self.tokenize([texts[i] for i in idx], is_query=False)
                states = self.module.states(feats).float().numpy().astype(np.float16)
                keep = self.doc_token_mask(feats).numpy()
                for j, i in enumerate(idx):
                    per_doc[i] = states[j][keep[j]]
                bar.update(len(idx))
        hidden = self.module.bert.config.hidden_size
        lengths = np.array([len(x) for x in per_doc], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        flat = np.concatenate(per_doc) if len(texts) else np.zeros((0, hidden), np.float16)
        log.info("colbert: encoded %d documents (%d tokens) in %.1fs", len(texts), len(flat),
                 time.perf_counter() - start)
        return flat, offsets

    def encode_docs(self, texts: Sequence[str], progress: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Document token vectors flat: ``(vectors [T, dim] float32, offsets [n+1])``."""
        states, offsets = self.doc_states(texts, progress=progress)
        return project_states(states, self.projection_weight()), offsets

    # saving ------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], training: dict[str, Any] | None = None, *, overwrite: bool = False,
             inputs: tuple = ()) -> dict:
        """Encoder (safetensors) + tokenizer + projection (safetensors) + manifest, as one atomic folder."""
        from safetensors.torch import save_file

        from rankstack.storage import atomic_directory, write_manifest

        with atomic_directory(path, overwrite=overwrite, inputs=inputs) as tmp:
            self.module.bert.save_pretrained(str(tmp), safe_serialization=True)
            self.tokenizer.save_pretrained(str(tmp))
            save_file({"weight": self.module.linear.weight.detach().float().contiguous()}, str(tmp / PROJECTION_FILE))
            params = {"dim": self.dim, "query_maxlen": self.query_maxlen, "doc_maxlen": self.doc_maxlen,
                      "markers": self.markers, "base_model": self.base_model}
            manifest = write_manifest(tmp, KIND, FORMAT_VERSION, params,
                                      libraries=["torch", "transformers", "tokenizers", "safetensors"],
                                      extra={"training": json.loads(json.dumps(dict(training or {}), default=str))})
        log.info("saved ColBERT model to %s", path)
        return manifest


def _is_bert(path: Path) -> bool:
    try:
        return json.loads((path / "config.json").read_text("utf-8")).get("model_type") == "bert"
    except (OSError, ValueError):
        return False


def _check_texts(texts: Any) -> list[str]:
    if isinstance(texts, str):
        raise InputError("colbert: pass a list of texts, got a single string", fix="wrap it: [text]")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InputError(f"colbert: text #{i} is a {type(t).__name__}, not a string")
    return texts


# ---------------------------------------------------------------------------------------------
# the corpus token-state cache
def cached_doc_states(encoder: ColBERTEncoder, texts: Sequence[str], ids: Sequence[str] | None,
                      cache_dir: str | Path | None, progress: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``encoder.doc_states(texts)``, stored under ``cache_dir/colbert/`` keyed by (encoder states id,
    corpus checksum), so every projection over the same encoder reuses one encoding pass. A corrupt or
    mismatching cache folder is logged and rebuilt, never trusted."""
    texts = _check_texts(texts)
    if cache_dir is None:
        return encoder.doc_states(texts, progress=progress)
    from rankstack.storage import atomic_directory, read_manifest, write_manifest

    checksum = texts_checksum(texts, ids)
    key = hashlib.sha256(json.dumps({"states": encoder.states_id, "texts": checksum}).encode()).hexdigest()[:16]
    folder = Path(cache_dir) / "colbert" / f"states-{key}"
    if folder.is_dir():
        try:
            p = read_manifest(folder, STATES_KIND, (STATES_FORMAT,))["params"]
            if (p.get("states_id"), p.get("texts_sha256"), p.get("num_docs")) != \
                    (encoder.states_id, checksum, len(texts)):
                raise InputError("cached token states describe another encoder or corpus", path=folder)
            states = np.load(folder / "states.npy", allow_pickle=False)
            offsets = np.load(folder / "offsets.npy", allow_pickle=False)
            if len(offsets) != len(texts) + 1 or offsets[-1] != len(states):
                raise InputError("cached token states are inconsistent", path=folder)
            log.info("colbert: loaded cached token states of %d documents from %s", len(texts), folder)
            return states, offsets
        except InputError as exc:
            log.warning("re-encoding: ignoring unusable token-state cache %s (%s)", folder, exc)
    states, offsets = encoder.doc_states(texts, progress=progress)
    with atomic_directory(folder, overwrite=True) as tmp:
        np.save(tmp / "states.npy", states, allow_pickle=False)
        np.save(tmp / "offsets.npy", offsets, allow_pickle=False)
        write_manifest(tmp, STATES_KIND, STATES_FORMAT,
                       {"states_id": encoder.states_id, "texts_sha256": checksum, "num_docs": len(texts),
                        "num_tokens": int(len(states))}, libraries=["numpy", "torch", "transformers"])
    return states, offsets
