"""A trainable bi-encoder: a sentence-transformers model (transformer + mean pooling + L2 norm) as a
``[B, L]`` scorer for the shared Trainer, an in-memory :class:`Encoder` keyed by its weights, and an
atomic, manifest-checked save that ``SentenceTransformer(path)`` and ``dense(encoder=PATH)`` load.

Why sentence-transformers itself and not a hand-written module: the saved folder must be a plain
sentence-transformers folder (modules.json, pooling config, safetensors), and its ``forward`` already
is the mean-pooled, normalised embedding of Sentence-BERT (Reimers & Gurevych, "Sentence-BERT", 2019);
training it directly means training exactly what inference loads. Scores are cosine similarities
(unit vectors, inner product), the dense-retrieval set-up of "Dense Passage Retrieval for Open-Domain
Question Answering" (Karpukhin et al., 2020).

Why an in-memory encoder keyed by a hash of the weights: validation, dynamic negative mining and
evaluation re-encode the corpus with the *current* weights; :func:`rankstack.encode.cached_encode`
keys its cache by ``encoder_id``, so naming the encoder by a SHA-256 of its tensors makes a second
encoding of the same weights free and can never reuse vectors of other weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.encode.base import Encoder
from rankstack.errors import InputError, require
from rankstack.hardware import hf_offline, resolve_precision, torch_threads

__all__ = ["KIND", "FORMAT_VERSION", "load_trainable", "tokenize", "embed", "BiEncoderScorer",
           "InMemoryEncoder", "weights_hash", "save_biencoder", "verify_biencoder_folder"]

log = logging.getLogger(__name__)

KIND = "biencoder"
FORMAT_VERSION = 1


def verify_biencoder_folder(path: str | os.PathLike[str], verify: bool = True) -> dict[str, Any] | None:
    """The verified manifest when ``path`` is a saved rankstack bi-encoder, else None (any other
    sentence-transformers folder is accepted as it is)."""
    from rankstack.storage import MANIFEST, artefact_kind, read_manifest

    path = Path(path)
    if not (path / MANIFEST).is_file() or artefact_kind(path) != KIND:
        return None
    return read_manifest(path, KIND, (FORMAT_VERSION,), verify=verify)


def load_trainable(model: str | os.PathLike[str] = "minilm", threads: int | None = None) -> Any:
    """A ``SentenceTransformer`` to train: ``"minilm"`` (all-MiniLM-L6-v2), a saved bi-encoder (verified
    against its manifest), any sentence-transformers folder, or a plain transformers folder (mean
    pooling is added). A Normalize module is appended when the model has none, so scores are cosines."""
    st = require("sentence_transformers", "dense", "bi-encoder training")
    from rankstack.encode.sentence_transformers import minilm_path

    path = minilm_path() if str(model) == "minilm" else Path(model).expanduser()
    if not path.is_dir() or not ((path / "config.json").is_file() or (path / "modules.json").is_file()):
        raise InputError("bi-encoder base is not a model folder (no config.json or modules.json)", path=path,
                         fix="pass 'minilm', a folder from 'rankstack train biencoder', or a transformers folder")
    verify_biencoder_folder(path)
    import transformers

    level = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # a plain encoder folder: the unused pooler is expected
    try:
        with hf_offline(), torch_threads(threads):
            st_model = st.SentenceTransformer(str(path), device="cpu")
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load the bi-encoder base ({exc})", path=path) from None
    finally:
        transformers.logging.set_verbosity(level)
    if not any(type(m).__name__ == "Normalize" for m in st_model.modules()):
        try:
            from sentence_transformers.sentence_transformer.modules import Normalize
        except ImportError:  # sentence-transformers < 6
            from sentence_transformers.models import Normalize
        st_model.append(Normalize())
    return st_model


def tokenize(model: Any, texts: Sequence[str], max_length: int) -> dict[str, Any]:
    """Features of ``texts`` truncated to ``max_length`` tokens (the model's own preprocessing)."""
    texts = list(texts)
    old = model.max_seq_length
    model.max_seq_length = int(max_length)
    try:
        prep = getattr(model, "preprocess", None) or model.tokenize  # tokenize: sentence-transformers < 6
        return dict(prep(texts))
    finally:
        model.max_seq_length = old


def embed(model: Any, features: Mapping[str, Any]) -> Any:
    """Unit-length sentence embeddings ``[n, dim]`` (fp32) of tokenised features."""
    import torch

    out = model(dict(features))["sentence_embedding"]
    return torch.nn.functional.normalize(out.float(), p=2, dim=-1)


def embedding_dim(model: Any) -> int:
    get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(get())


def weights_hash(model: Any) -> str:
    """SHA-256 (16 hex) of a module's tensors by name: the identity of the current weights."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _scorer_class() -> type:
    import torch

    class _BiEncoderScorer(torch.nn.Module):
        """``forward(inputs) -> scores [B, L]``: query embeddings against document embeddings.

        ``inputs``: ``q`` (query features), and either ``d`` (document features, encoded by the same
        model, or by ``doc_model`` when one is given) or ``d_vectors`` (fixed document vectors, ADORE).
        Every query is scored against every document of the batch (in-batch negatives); ``own [B, L]``
        gathers each query's own candidates instead. Scores are cosines times ``scale`` (distillation
        losses compare score margins with a teacher's logits, so the cosine range [-1, 1] is widened).
        """

        def __init__(self, model: Any, doc_model: Any = None, scale: float = 1.0) -> None:
            super().__init__()
            self.model = model
            self.doc_model = doc_model
            self.scale = float(scale)

        def forward(self, inputs: dict[str, Any]) -> Any:
            q = embed(self.model, inputs["q"])
            if inputs.get("d_vectors") is not None:
                d = inputs["d_vectors"].float()
            else:
                d = embed(self.doc_model if self.doc_model is not None else self.model, inputs["d"])
            scores = (q @ d.T) * self.scale
            if inputs.get("own") is not None:
                scores = scores.gather(1, inputs["own"])
            return scores

    return _BiEncoderScorer


def BiEncoderScorer(model: Any, doc_model: Any = None, scale: float = 1.0) -> Any:  # noqa: N802 - a class
    """The Trainer's scorer over a SentenceTransformer (defined on first use: importing this module never
    imports torch)."""
    return _scorer_class()(model, doc_model, scale)


class InMemoryEncoder(Encoder):
    """An :class:`Encoder` over a SentenceTransformer being trained; ``encoder_id`` hashes its weights,
    so :func:`~rankstack.encode.cached_encode` re-encodes exactly when the weights changed."""

    backend = "torch"

    def __init__(self, model: Any, max_length: int = 256, precision: str = "auto", threads: int | None = None,
                 batch_size: int = 32, progress: bool | None = None) -> None:
        super().__init__(batch_size=batch_size, progress=progress)
        self.model, self.max_length, self.threads = model, int(max_length), threads
        self.precision = resolve_precision(precision)[0]
        self.dim = embedding_dim(model)
        self.encoder_id = f"st-mem:{weights_hash(model)}:len{self.max_length}"

    def refresh(self) -> InMemoryEncoder:
        """Recompute the id after the weights changed (call before encoding with new weights)."""
        self.encoder_id = f"st-mem:{weights_hash(self.model)}:len{self.max_length}"
        return self

    @contextmanager
    def _session(self) -> Iterator[None]:
        was = self.model.training
        self.model.eval()
        try:
            with torch_threads(self.threads):
                yield
        finally:
            self.model.train(was)

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        import torch

        feats = tokenize(self.model, texts, self.max_length)
        auto = torch.autocast("cpu", dtype=torch.bfloat16) if self.precision == "bf16" else nullcontext()
        with torch.inference_mode(), auto:
            return embed(self.model, feats).numpy()


def save_biencoder(model: Any, path: str | os.PathLike[str], *, training: Mapping[str, Any] | None = None,
                   params: Mapping[str, Any] | None = None, overwrite: bool = False, inputs: tuple = (),
                   extra: Callable[[Path], None] | None = None) -> dict:
    """Save a sentence-transformers folder + ``manifest.json`` (kind ``biencoder``) as one atomic folder.

    ``extra(tmp)`` may add files (e.g. ADORE's fixed document index) before the manifest seals them.
    The weights are safetensors; nothing is pickled.
    """
    from rankstack.storage import atomic_directory, write_manifest

    with atomic_directory(path, overwrite=overwrite, inputs=inputs) as tmp:
        model.save(str(tmp), safe_serialization=True, create_model_card=False)
        for stale in tmp.rglob("*"):
            if stale.suffix in (".bin", ".pt", ".pkl"):
                raise RuntimeError(f"internal error: the bi-encoder save wrote a pickle file {stale.name}")
        if extra is not None:
            extra(tmp)
        meta = {"max_length": int(model.max_seq_length), "dim": embedding_dim(model),
                **dict(params or {})}
        manifest = write_manifest(tmp, KIND, FORMAT_VERSION, meta,
                                  libraries=["torch", "transformers", "sentence-transformers", "safetensors"],
                                  extra={"training": json.loads(json.dumps(dict(training or {}), default=str))})
    log.info("saved bi-encoder to %s", path)
    return manifest
