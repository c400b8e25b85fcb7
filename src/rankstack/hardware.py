"""What this CPU can do fast, and scoped (never process-wide) settings for the libraries that use it.

Why one place: on CPUs with AMX or AVX-512 BF16, ``torch.autocast("cpu", dtype=torch.bfloat16)``
runs transformer encoders ~2-3x faster than fp32 with near-identical scores; elsewhere bf16 is
emulated and slower than fp32. Encoders, rerankers and the Trainer all call :func:`resolve_precision`,
so "auto" means the same thing everywhere and the reason is reported.

Override: the environment variable ``RANKSTACK_BF16`` decides instead of the CPU.

* ``RANKSTACK_BF16=0`` forces the fp32 fallback even on an AMX CPU (how CI proves the fallback path
  on a machine that has bf16: ``RANKSTACK_BF16=0 pytest -m precision``).
* ``RANKSTACK_BF16=1`` claims native bf16 (bf16 then runs even where it is emulated and slow; use it
  to exercise the bf16 code path, not for speed).
* unset or empty: detect. Any other value is an error (a typo must not silently mean "detect").

Why context managers for threads and offline flags: a library constructor that calls
``torch.set_num_threads`` or sets ``HF_HUB_OFFLINE`` changes every other user of the process (a
notebook, the service, a test); :func:`torch_threads` and :func:`hf_offline` scope the change to one
call and restore the previous state, even on error.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rankstack.errors import InputError

__all__ = ["PRECISIONS", "BF16_FLAGS", "BF16_ENV", "cpu_bf16_flags", "bf16_override", "bf16_support",
           "resolve_precision", "torch_threads", "hf_offline", "OFFLINE_VARS", "SPEED_FLAGS", "cpu_signature"]

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16")
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
BF16_ENV = "RANKSTACK_BF16"
OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
# the SIMD features that decide which inference path (fp32, bf16, int8, ONNX Runtime) is fastest
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16",
               "amx_int8")


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


def cpu_signature(cpuinfo: str | Path = "/proc/cpuinfo") -> dict[str, object]:
    """CPU model name, the :data:`SPEED_FLAGS` it advertises, the core count and the ``RANKSTACK_BF16``
    override: what a measured choice of inference path depends on (its cache key)."""
    model, flags = "unknown", set()
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        if line.startswith("model name") and model == "unknown":
            model = line.split(":", 1)[1].strip()
        elif line.startswith("flags") and not flags:
            flags = set(line.split(":", 1)[1].split())
    return {"model": model, "flags": [f for f in SPEED_FLAGS if f in flags], "cpus": os.cpu_count() or 0,
            "bf16_override": os.environ.get(BF16_ENV, "").strip()}


def bf16_override() -> bool | None:
    """``RANKSTACK_BF16``: True (=1), False (=0) or None (unset/empty: detect)."""
    value = os.environ.get(BF16_ENV, "").strip()
    if value == "":
        return None
    if value in ("0", "1"):
        return value == "1"
    raise InputError(f"{BF16_ENV}={value!r} is not 0 or 1",
                     fix=f"set {BF16_ENV}=0 to force fp32, {BF16_ENV}=1 to claim bf16, or unset it")


def bf16_support(cpuinfo: str | Path | None = None) -> tuple[bool, str]:
    """Whether bf16 matmuls run natively here, and how that was decided.

    ``RANKSTACK_BF16`` wins; then oneDNN (``torch.ops.mkldnn._is_mkldnn_bf16_supported``), then the
    CPU flags. With ``cpuinfo`` given (tests: a fake /proc/cpuinfo) only those flags decide. Without
    torch or oneDNN the answer is no.
    """
    forced = bf16_override()
    if forced is not None:
        return forced, f"{BF16_ENV}={int(forced)} " + ("claims native bf16" if forced else "forces fp32")
    if cpuinfo is not None:
        flags = cpu_bf16_flags(cpuinfo)
        return (True, f"CPU flag {sorted(flags)[0]}") if flags else (False, "no amx_bf16/avx512_bf16 CPU flag")
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


def resolve_precision(precision: str, choices: tuple[str, ...] = PRECISIONS) -> tuple[str, str]:
    """``(precision that will run, why)``; bf16 on an unsupported CPU falls back to fp32.

    ``choices`` lists what the caller offers (the cross-encoder adds ``"bf16-weights"``: weights cast
    once, inference only; it too falls back to fp32 without native bf16).
    """
    if precision not in choices:
        raise InputError(f"unknown precision {precision!r}", fix=f"choose one of {', '.join(choices)}")
    if precision == "fp32":
        return "fp32", "requested"
    ok, why = bf16_support()
    if ok:
        return ("bf16-weights" if precision == "bf16-weights" else "bf16"), why
    if precision != "auto":
        log.warning("%s requested but %s: running fp32", precision, why)
    return "fp32", why


def _check_threads(threads: int | None) -> int:
    if threads is None:
        return 0
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise InputError(f"threads must be a non-negative integer (0 or None = leave as is), got {threads!r}")
    return threads


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads (0/None = leave as is), then restore."""
    n = _check_threads(threads)
    import torch

    old = torch.get_num_threads()
    if n and n != old:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != old:
            torch.set_num_threads(old)


@contextmanager
def hf_offline() -> Iterator[None]:
    """Run the block with the Hugging Face libraries offline (no hub access), then restore the env.

    Sets ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1``; ``huggingface_hub`` reads them once at
    import into ``huggingface_hub.constants.HF_HUB_OFFLINE``, so that constant is set for the block
    and afterwards put back to what the restored environment says.
    """
    saved = {name: os.environ.get(name) for name in OFFLINE_VARS}
    constants = sys.modules.get("huggingface_hub.constants")
    old_constant = getattr(constants, "HF_HUB_OFFLINE", None) if constants is not None else None
    for name in OFFLINE_VARS:
        os.environ[name] = "1"
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        constants = sys.modules.get("huggingface_hub.constants")
        if constants is not None and hasattr(constants, "HF_HUB_OFFLINE"):
            if old_constant is not None:
                constants.HF_HUB_OFFLINE = old_constant
            else:  # imported inside the block: give it the value the restored environment implies
                env = (os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or "")
                constants.HF_HUB_OFFLINE = env.strip().upper() in ("1", "ON", "YES", "TRUE")
