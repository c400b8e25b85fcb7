"""The encoder interface, CPU precision detection, length-sorted batching and the embedding cache.

Why one interface: dense retrieval, negative mining and training all need ``encode(texts)`` ->
float32 ``[n, d]`` unit vectors, whatever runs underneath (PyTorch via sentence-transformers, or ONNX
Runtime). Unit vectors make inner product equal cosine similarity, the score Sentence-BERT
(Reimers & Gurevych, "Sentence-BERT", 2019) models are trained with.

Why length-sorted batches: padding costs as much compute as real tokens; sorting by length before
batching (as sentence-transformers does) cuts the padded work several-fold on mixed-length corpora.

Why bf16 autocast: on CPUs with AVX-512 BF16 / AMX-BF16, oneDNN runs a MiniLM forward ~2.6x faster
than fp32 with scores correlating > 0.9999 (see NOTES.md); elsewhere it is slower, so ``"auto"``
only picks it when :func:`rankstack.hardware.resolve_precision` says bf16 is native (or
``RANKSTACK_BF16=1`` claims it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.errors import InputError

__all__ = ["Encoder", "length_sorted_batches", "l2_normalise", "cached_encode", "load_encoder", "fingerprint_files",
           "texts_checksum"]

log = logging.getLogger(__name__)

EMBEDDINGS_KIND = "embeddings"
EMBEDDINGS_FORMAT = 1


# ---------------------------------------------------------------------------------------------
# batching and maths
def length_sorted_batches(texts: Sequence[str], batch_size: int) -> list[np.ndarray]:
    """Index batches over ``texts``, longest first, so each batch pads to similar lengths."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    order = np.argsort(-lengths, kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as contiguous float32."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.maximum(norms, 1e-12, out=norms)
    return np.ascontiguousarray(x / norms, dtype=np.float32)


def fingerprint_files(paths: Sequence[Path]) -> str:
    """SHA-256 (12 hex) over the contents of ``paths``: ties an encoder id to its exact weights."""
    h = hashlib.sha256()
    for p in sorted(Path(x) for x in paths):
        h.update(p.name.encode())
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:12]


def texts_checksum(texts: Sequence[str], ids: Sequence[str] | None = None) -> str:
    """SHA-256 over ids and texts: the cache key of a corpus' embeddings."""
    h = hashlib.sha256()
    for i, t in enumerate(texts):
        h.update((str(ids[i]) if ids is not None else str(i)).encode())
        h.update(b"\x00")
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\x01")
    return h.hexdigest()


def _check_texts(texts: Any) -> list[str]:
    if isinstance(texts, str):
        raise InputError("encode() takes a list of texts, got a single string", fix="wrap it: [text]")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InputError(f"text #{i} is a {type(t).__name__}, not a string")
    return texts


# ---------------------------------------------------------------------------------------------
class Encoder:
    """Base class. Subclasses set ``encoder_id``, ``dim``, ``precision``, and implement ``_encode_batch``.

    ``encoder_id`` names the model *and its weights* (backend, name, weights checksum, max length):
    an index records it and refuses queries encoded by anything else, because vectors of different
    encoders live in different spaces. Precision is not part of it: bf16 and fp32 vectors of one model
    are interchangeable to within ~1e-3 cosine.
    """

    backend: str = "base"
    encoder_id: str = "base"
    dim: int = 0
    precision: str = "fp32"
    max_length: int | None = None

    def __init__(self, batch_size: int = 32, progress: bool | None = None) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = batch_size
        self.progress = progress

    def _encode_batch(self, texts: list[str]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    @contextmanager
    def _session(self) -> Iterator[None]:
        """Set up threads etc. around one ``encode`` call; subclasses override."""
        yield

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None,
               progress: bool | None = None) -> np.ndarray:
        """Encode ``texts`` to a float32 ``[n, dim]`` array of unit vectors, rows in input order."""
        texts = _check_texts(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        batches = length_sorted_batches(texts, batch_size or self.batch_size)
        show = progress if progress is not None else self.progress
        if show is None:
            show = len(texts) >= 512
        from tqdm.auto import tqdm

        start = time.perf_counter()
        with self._session(), tqdm(total=len(texts), unit="text", disable=not show,
                                   desc=f"encode ({self.backend}, {self.precision})") as bar:
            for idx in batches:
                vecs = self._encode_batch([texts[i] for i in idx])
                if vecs.shape != (len(idx), self.dim):
                    raise RuntimeError(f"{self.encoder_id} returned shape {vecs.shape} for "
                                       f"{len(idx)} texts, expected ({len(idx)}, {self.dim})")
                out[idx] = vecs
                bar.update(len(idx))
        took = time.perf_counter() - start
        log.info("encoded %d texts with %s [%s, %s] in %.1fs (%.1f texts/s)", len(texts), self.encoder_id,
                 self.backend, self.precision, took, len(texts) / max(took, 1e-9))
        return l2_normalise(out)

    def describe(self) -> dict[str, Any]:
        return {"encoder_id": self.encoder_id, "backend": self.backend, "dim": self.dim,
                "precision": self.precision, "max_length": self.max_length}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.encoder_id!r}, precision={self.precision!r})"


# ---------------------------------------------------------------------------------------------
# the corpus embedding cache
def _cache_folder(cache_dir: Path, encoder: Encoder, checksum: str) -> Path:
    key = hashlib.sha256(json.dumps({"encoder": encoder.encoder_id, "precision": encoder.precision,
                                     "texts": checksum}, sort_keys=True).encode()).hexdigest()[:16]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in encoder.encoder_id)[:60]
    return Path(cache_dir) / "embeddings" / f"{safe}-{encoder.precision}-{key}"


def cached_encode(encoder: Encoder, texts: Sequence[str], ids: Sequence[str] | None = None,
                  cache_dir: str | Path | None = None, *, batch_size: int | None = None,
                  progress: bool | None = None, encode_fn: Any = None) -> np.ndarray:
    """``encoder.encode(texts)``, stored under ``cache_dir/embeddings/`` so a second run loads it.

    The folder holds ``embeddings.npy`` and a manifest (encoder id, precision, document count, texts
    checksum, file SHA-256). It is keyed by all of these, so changing the model, the precision or any
    text encodes afresh; a corrupt or mismatching folder is logged and rebuilt, never trusted.

    ``encode_fn(texts, ids) -> vectors`` replaces ``encoder.encode`` (e.g. a Ray executor's ``encode``, whose
    vectors equal the encoder's bit for bit, so the cache stays valid for both).
    """
    texts = _check_texts(texts)

    def _encode() -> np.ndarray:
        if encode_fn is not None:
            return np.ascontiguousarray(encode_fn(texts, ids), dtype=np.float32)
        return encoder.encode(texts, batch_size=batch_size, progress=progress)

    if cache_dir is None:
        return _encode()
    from rankstack.storage import atomic_directory, read_manifest, write_manifest

    checksum = texts_checksum(texts, ids)
    folder = _cache_folder(Path(cache_dir), encoder, checksum)
    if folder.is_dir():
        try:
            manifest = read_manifest(folder, EMBEDDINGS_KIND, (EMBEDDINGS_FORMAT,))
            p = manifest["params"]
            if (p.get("encoder_id"), p.get("precision"), p.get("num_docs"), p.get("texts_sha256")) != \
                    (encoder.encoder_id, encoder.precision, len(texts), checksum):
                raise InputError("cached embeddings describe another encoder or corpus", path=folder)
            vectors = np.load(folder / "embeddings.npy", allow_pickle=False)
            if vectors.shape != (len(texts), encoder.dim) or vectors.dtype != np.float32:
                raise InputError(f"cached embeddings have shape {vectors.shape}", path=folder)
            log.info("loaded %d cached embeddings from %s", len(texts), folder)
            return vectors
        except InputError as exc:
            log.warning("re-encoding: ignoring unusable embedding cache %s (%s)", folder, exc)
    vectors = _encode()
    # overwrite=True: the cache rewrites its own folder (e.g. after a corrupt copy was ignored above).
    with atomic_directory(folder, overwrite=True) as tmp:
        np.save(tmp / "embeddings.npy", vectors, allow_pickle=False)
        write_manifest(tmp, EMBEDDINGS_KIND, EMBEDDINGS_FORMAT,
                       {"encoder_id": encoder.encoder_id, "precision": encoder.precision,
                        "num_docs": len(texts), "dim": encoder.dim, "texts_sha256": checksum,
                        "backend": encoder.backend, "max_length": encoder.max_length},
                       libraries=["numpy", "torch", "sentence-transformers", "onnxruntime"])
    log.info("cached %d embeddings in %s", len(texts), folder)
    return vectors


# ---------------------------------------------------------------------------------------------
def load_encoder(spec: str | Path | Mapping[str, Any] | Encoder = "minilm", **options: Any) -> Encoder:
    """An Encoder from a registered name (``"minilm"``, ``"onnx-minilm"``), a local
    sentence-transformers folder, an ``.onnx`` file, or a ``{"name", "args"}`` spec.

    ``options`` (precision, threads, batch_size, max_length, progress) are passed on when not None.
    """
    from rankstack.registry import build, names, parse_spec

    if isinstance(spec, Encoder):
        return spec
    opts = {k: v for k, v in options.items() if v is not None}
    if isinstance(spec, Mapping):
        name, args = parse_spec(spec)
        return build(name, "encoder", **{**opts, **args})
    text = str(spec)
    if text in names("encoder"):
        return build(text, "encoder", **opts)
    path = Path(text).expanduser()
    if path.is_dir():
        return build("sentence-transformers", "encoder", path=str(path), **opts)
    if path.is_file() and path.suffix == ".onnx":
        return build("onnx", "encoder", path=str(path), **opts)
    raise InputError(f"encoder {text!r} is neither a registered encoder nor a local model folder or "
                     ".onnx file", fix=f"use one of {', '.join(names('encoder'))}, or a path to a "
                     "sentence-transformers folder")
