"""Inference paths: the ways one transformer (bi-encoder or cross-encoder) can be run on a CPU.

Why several: which one is fastest depends on the CPU, not on the model. On an Intel CPU with AMX or
AVX-512 BF16, bf16 (autocast, or weights cast once) runs ~2x fp32; on an AVX2-only AMD EPYC bf16 is
emulated and slower than fp32, while int8 matrix products (VNNI, or AVX2's ``vpmaddubsw``) still
help. So rankstack offers every path and picks one by *measuring* it (:mod:`rankstack.encode.calibrate`),
never by reading a CPU flag alone:

* ``fp32`` — the reference: plain PyTorch.
* ``bf16`` — ``torch.autocast("cpu", bfloat16)``; ``bf16-weights`` — weights cast to bf16 once
  (cross-encoder only). Offered only where bf16 is native (:func:`rankstack.hardware.bf16_support`).
* ``torch-int8`` — dynamic int8 quantisation (per output channel) of the ``nn.Linear`` layers but the head
  (``torch.ao.quantization.quantize_dynamic``: int8 weights, activations quantised per batch at run
  time), as in "Q8BERT: Quantized 8Bit BERT" (Zafrir et al., 2019) without the training step.
* ``onnx-fp32`` — the model exported to ONNX and rewritten by ONNX Runtime's transformer optimiser
  (fused attention, skip layer norm, GELU: ``onnxruntime.transformers.optimizer``), run by ONNX Runtime.
* ``onnx-int8`` — that graph with ``onnxruntime.quantization.quantize_dynamic`` (int8 weights of
  MatMul/Attention, dynamic uint8 activations).

``auto`` keeps its old meaning everywhere it is accepted (bf16 where native, else fp32); measured
choice is ``calibrate`` (encoders) or ``rankstack rerank --precision auto`` (the CLI calibrates).
"""

from __future__ import annotations

import logging
from typing import Any

from rankstack.errors import InputError
from rankstack.hardware import bf16_support, resolve_precision

__all__ = ["TORCH_PATHS", "ONNX_PATHS", "PATHS", "resolve_path", "candidate_paths", "quantize_linear_int8",
           "int8_engine"]

log = logging.getLogger(__name__)

TORCH_PATHS = ("fp32", "bf16", "bf16-weights", "torch-int8")
ONNX_PATHS = ("onnx-fp32", "onnx-int8")
PATHS = TORCH_PATHS + ONNX_PATHS
KEEP_FP32 = ("classifier", "pooler")


def int8_engine() -> str | None:
    """The quantised-kernel engine torch offers here (``x86`` or ``fbgemm`` on x86-64), or None."""
    import torch

    engines = list(torch.backends.quantized.supported_engines)
    for name in ("x86", "fbgemm", "qnnpack"):
        if name in engines:
            return name
    return None


def _onnx_ready() -> tuple[bool, str]:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        return False, f"{exc.name} is not installed (pip install onnx onnxruntime)"
    return True, "onnxruntime"


def resolve_path(precision: str, choices: tuple[str, ...]) -> tuple[str, str]:
    """``(path that will run, why)`` for a requested precision/path.

    ``auto``, ``bf16`` and ``bf16-weights`` follow :func:`rankstack.hardware.resolve_precision` (bf16
    falls back to fp32 with a warning where it is not native); an int8 or ONNX path that cannot run
    here is an :class:`InputError` (a silently different path would be a different result).
    """
    if precision not in choices:
        raise InputError(f"unknown precision {precision!r}", fix=f"choose one of {', '.join(choices)}")
    if precision in ("auto", "fp32", "bf16", "bf16-weights"):
        return resolve_precision(precision, tuple(c for c in choices if c in ("auto", "fp32", "bf16", "bf16-weights")))
    if precision == "torch-int8":
        engine = int8_engine()
        if engine is None:
            raise InputError("precision 'torch-int8': this torch build has no quantised engine",
                             fix="use precision 'fp32' or an ONNX path")
        return "torch-int8", f"torch quantised engine {engine}"
    if precision in ONNX_PATHS:
        ok, why = _onnx_ready()
        if not ok:
            raise InputError(f"precision {precision!r}: {why}", fix="pip install onnx onnxruntime, or use a torch path")
        return precision, why
    return precision, "requested"


def candidate_paths(choices: tuple[str, ...]) -> list[str]:
    """The paths among ``choices`` worth measuring on this machine: fp32 always; bf16 ones only where
    bf16 is native (emulated bf16 is slower than fp32 and never wins); int8/ONNX where their
    libraries are present."""
    out = ["fp32"]
    if bf16_support()[0]:
        out += [p for p in ("bf16", "bf16-weights") if p in choices]
    if "torch-int8" in choices and int8_engine() is not None:
        out.append("torch-int8")
    if _onnx_ready()[0]:
        out += [p for p in ONNX_PATHS if p in choices]
    return out


def quantize_linear_int8(module: Any, keep_fp32: tuple[str, ...] = KEEP_FP32) -> Any:
    """A copy of ``module`` whose ``nn.Linear`` layers are dynamically quantised to int8, per output
    channel (inference only); layers whose name contains one of ``keep_fp32`` (the pooler and the
    one-logit head: tiny, and where a cross-encoder's small score differences are decided) stay fp32.
    Per-channel weights and a fp32 head raised a MiniLM cross-encoder's score correlation with fp32
    from 0.84 to 0.92 on a probe (fresh head, 64 scifact pairs)."""
    import torch

    engine = int8_engine()
    if engine is None:
        raise InputError("torch-int8: this torch build has no quantised engine", fix="use precision 'fp32'")
    if torch.backends.quantized.engine != engine and torch.backends.quantized.engine in ("none", None):
        torch.backends.quantized.engine = engine
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    spec = {name: per_channel_dynamic_qconfig for name, m in module.named_modules()
            if isinstance(m, torch.nn.Linear) and not any(k in name for k in keep_fp32)}
    return quantize_dynamic(module, spec, dtype=torch.qint8, inplace=False)
