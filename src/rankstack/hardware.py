"""What this CPU can do fast: one place decides whether bf16 autocast runs natively.

Why it matters: on CPUs with AMX or AVX-512 BF16, ``torch.autocast("cpu", dtype=torch.bfloat16)``
runs transformer encoders ~2-3x faster than fp32 with near-identical scores; elsewhere bf16 is
emulated and slower than fp32. Encoders, rerankers and the Trainer all ask here, so "auto" means the
same thing everywhere and the reason is reported.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rankstack.errors import InputError

__all__ = ["PRECISIONS", "BF16_FLAGS", "cpu_bf16_flags", "bf16_support", "resolve_precision"]

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16")
BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_bf16_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The bf16-related CPU flags (``amx_bf16``, ``avx512_bf16``) this machine advertises."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return {f for f in BF16_FLAGS if f in flags}
    return set()


def bf16_support() -> tuple[bool, str]:
    """Whether bf16 matmuls run natively here, and how that was decided.

    Asks oneDNN first (``torch.ops.mkldnn._is_mkldnn_bf16_supported``), then the CPU flags. Without
    torch or oneDNN the answer is no.
    """
    try:
        import torch
    except ImportError:
        return False, "torch is not installed"
    if not torch.backends.mkldnn.is_available():
        return False, "torch has no oneDNN"
    try:
        if bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()):
            return True, "oneDNN reports native bf16"
    except (AttributeError, RuntimeError):  # older or non-x86 builds
        pass
    flags = cpu_bf16_flags()
    if flags:
        return True, f"CPU flag {sorted(flags)[0]}"
    return False, "no amx_bf16/avx512_bf16 CPU flag"


def resolve_precision(precision: str) -> tuple[str, str]:
    """``(precision that will run, why)``; ``bf16`` on an unsupported CPU falls back to fp32."""
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}", fix=f"choose one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return "fp32", "requested"
    ok, why = bf16_support()
    if ok:
        return "bf16", why
    if precision == "bf16":
        log.warning("bf16 requested but %s: running fp32", why)
    return "fp32", why
