"""The cross-encoder on ONNX Runtime: its fused fp32 graph or the dynamic-int8 one.

Why: ONNX Runtime's fused transformer kernels (and int8 MatMul/Attention after dynamic
quantisation) are fast on every x86 CPU, AVX2-only ones included, where bf16 is emulated and slow.
The graph comes from :func:`rankstack.encode.onnx_export.onnx_model` (exported once per model,
library versions and variant; cached as a checksummed artefact). Tokenisation is the model's own
tokenizer with ``sentence_transformers.CrossEncoder``'s settings (longest-first truncation, padding
to the batch's longest pair), so the inputs are exactly those of the torch paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.encode.onnx_export import onnx_model, ort_session, weights_fingerprint

__all__ = ["OnnxPairModel", "INPUT_NAMES"]

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


class OnnxPairModel:
    """Scores (query, document) pairs with an ONNX export of a one-logit sequence classifier.

    ``variant``: ``"fp32"`` (fused graph) or ``"int8"`` (fused + dynamic int8). ``threads``: ONNX
    Runtime intra-op threads (None: its default). ``cache_dir``: where exports are kept.
    """

    def __init__(self, model: Any, tokenizer: Any, variant: str, cache_dir: str | Path, threads: int | None = None,
                 source: str = "") -> None:
        self.tokenizer = tokenizer
        names = set(getattr(tokenizer, "model_input_names", INPUT_NAMES))
        self.input_names = [n for n in INPUT_NAMES if n in names]
        self.fingerprint = weights_fingerprint(model)
        self.path = onnx_model(model, self.input_names, "sequence-classification", variant, cache_dir,
                               self.fingerprint, source=source)
        self.session = ort_session(self.path, threads)
        self.variant = variant

    def __call__(self, query_texts: Sequence[str], doc_texts: Sequence[str], max_length: int) -> np.ndarray:
        enc = self.tokenizer(list(query_texts), list(doc_texts), truncation="longest_first", max_length=max_length,
                             padding=True, return_tensors="np")
        feeds = {n: np.asarray(enc[n], dtype=np.int64) for n in self.input_names}
        logits = self.session.run(None, feeds)[0]
        return np.asarray(logits, dtype=np.float64).reshape(len(query_texts), -1)[:, 0]
