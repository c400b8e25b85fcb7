"""Choose an inference path by measuring it: the fastest one that scores like fp32, cached per CPU.

Why measure: the fastest path (fp32, bf16, torch int8, ONNX Runtime fp32/int8) differs between CPU
families and even between loads of one machine, and reading CPU flags cannot say by how much. So a
calibration runs every candidate path on the same few hundred inputs (interleaved rounds, best rate
of each: the machine is shared), and keeps the **fastest path whose scores correlate with fp32's
(Pearson on the raw scores, >= 0.999 by default; the encoder uses 0.98, see
:mod:`rankstack.encode.encoder_calibration`)** and, when a quality function is given (nDCG@10 on
judged held-out queries), **whose quality is within 0.002 of fp32's**. fp32 always qualifies, so
there is always an answer.

The decision is a small JSON file written atomically under ``<cache>/inference/``, keyed by the
model fingerprint, the CPU (model name and SIMD flags, :func:`rankstack.hardware.cpu_signature`),
the thread count and whatever else the caller adds (max length, batch size): a copy of the cache
on another CPU or with other threads is never trusted; a corrupt file is ignored and re-measured.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.errors import InputError
from rankstack.hardware import cpu_signature

__all__ = ["PathResult", "Decision", "decision_key", "load_decision", "save_decision", "calibrate",
           "MIN_CORRELATION", "MAX_QUALITY_LOSS"]

log = logging.getLogger(__name__)

MIN_CORRELATION = 0.999
MAX_QUALITY_LOSS = 0.002
FORMAT_VERSION = 1


@dataclass
class PathResult:
    """One path's measurement: items/s (best round), correlation with fp32, quality, verdict."""

    path: str
    items_per_s: float
    pearson: float
    spearman: float
    quality: float | None = None
    ok: bool = True
    why: str = ""


@dataclass
class Decision:
    """The chosen path and every measurement behind it."""

    kind: str
    key: str
    path: str
    results: list[PathResult]
    items: int
    threads: int | None
    cpu: dict[str, Any] = field(default_factory=cpu_signature)
    min_correlation: float = MIN_CORRELATION
    max_quality_loss: float = MAX_QUALITY_LOSS
    quality_measure: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("cached")
        return {"format_version": FORMAT_VERSION, **d}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Decision:
        d = dict(d)
        if d.pop("format_version", None) != FORMAT_VERSION:
            raise InputError("calibration file has an unknown format version")
        d["results"] = [PathResult(**r) for r in d["results"]]
        return cls(**d)

    def result(self, path: str) -> PathResult:
        return next(r for r in self.results if r.path == path)

    def to_text(self) -> str:
        ref = self.result("fp32").items_per_s if any(r.path == "fp32" for r in self.results) else None
        lines = [f"inference path: {self.path} ({'cached decision' if self.cached else 'measured now'}; "
                 f"{self.items} items, {self.threads or 'default'} threads, CPU {self.cpu.get('model')})"]
        for r in self.results:
            ratio = f" = {r.items_per_s / ref:.2f}x fp32" if ref else ""
            q = f", {self.quality_measure} {r.quality:.4f}" if r.quality is not None else ""
            lines.append(f"  {r.path:13s} {r.items_per_s:8.1f}/s{ratio}, Pearson {r.pearson:.5f}, "
                         f"Spearman {r.spearman:.5f}{q}{'' if r.ok else '  rejected: ' + r.why}")
        return "\n".join(lines)


def decision_key(kind: str, fingerprint: str, threads: int | None, **extra: Any) -> str:
    """Hash of what a decision depends on: model fingerprint, CPU signature, threads and ``extra``."""
    blob = json.dumps({"kind": kind, "fingerprint": fingerprint, "cpu": cpu_signature(), "threads": threads or 0,
                       "extra": extra, "format": FORMAT_VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _file(cache_dir: str | Path, kind: str, key: str) -> Path:
    return Path(cache_dir) / "inference" / f"{kind}-{key}.json"


def load_decision(cache_dir: str | Path | None, kind: str, key: str) -> Decision | None:
    """The cached decision for ``key``, or None (missing, unreadable or for another key)."""
    if cache_dir is None:
        return None
    path = _file(cache_dir, kind, key)
    if not path.is_file():
        return None
    try:
        decision = Decision.from_dict(json.loads(path.read_text("utf-8")))
        if decision.key != key or decision.kind != kind:
            raise InputError("calibration file describes another model or CPU")
    except (InputError, ValueError, TypeError, KeyError, StopIteration) as exc:
        log.warning("ignoring unusable calibration file %s (%s): measuring again", path, exc)
        return None
    decision.cached = True
    return decision


def save_decision(cache_dir: str | Path, decision: Decision) -> Path:
    """Write the decision as JSON, atomically (a crash leaves the old file or the new one)."""
    from rankstack.storage import atomic_write_text

    path = _file(cache_dir, decision.kind, decision.key)
    atomic_write_text(path, json.dumps(decision.to_dict(), indent=1, sort_keys=True) + "\n", kind="json")
    return path


def _correlations(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    from scipy.stats import pearsonr, spearmanr

    a, b = np.asarray(a, np.float64).reshape(-1), np.asarray(b, np.float64).reshape(-1)
    if a.shape != b.shape:
        raise RuntimeError(f"a path returned {a.shape} scores, fp32 {b.shape}")
    if np.ptp(a) == 0 or np.ptp(b) == 0:  # constant scores: correlation undefined, compare exactly
        same = float(np.allclose(a, b, rtol=1e-3, atol=1e-6))
        return same, same
    return float(pearsonr(a, b)[0]), float(spearmanr(a, b)[0])


def calibrate(kind: str, key: str, runners: Mapping[str, Callable[[], np.ndarray]], items: int,
              threads: int | None = None, quality: Callable[[np.ndarray], float] | None = None,
              quality_measure: str | None = None, rounds: int = 2, warmup: Callable[[str], None] | None = None,
              min_correlation: float = MIN_CORRELATION, max_quality_loss: float = MAX_QUALITY_LOSS,
              extra: Mapping[str, Any] | None = None) -> Decision:
    """Measure every path in ``runners`` (name -> a call scoring the fixed ``items`` inputs) and decide.

    ``runners`` must contain ``"fp32"`` (the reference). ``warmup(path)`` runs once per path before
    timing (kernel selection, lazy exports). Rounds are interleaved over paths; a path's rate is its
    best round. ``quality(scores)`` (higher is better) adds the quality rule. A path that raises is
    rejected with the error as its reason.
    """
    if "fp32" not in runners:
        raise InputError("calibration needs the fp32 path as its reference")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise InputError(f"calibration rounds must be a positive integer, got {rounds!r}")
    best: dict[str, float] = {}
    scores: dict[str, np.ndarray] = {}
    errors: dict[str, str] = {}
    for name in runners:
        if warmup is not None:
            try:
                warmup(name)
            except Exception as exc:  # noqa: BLE001 - any failure rejects this path, not the calibration
                if name == "fp32":
                    raise
                errors[name] = f"{type(exc).__name__}: {exc}"
                log.warning("calibration: path %s failed to start (%s)", name, errors[name])
    for _ in range(rounds):
        for name, run in runners.items():
            if name in errors:
                continue
            start = time.perf_counter()
            try:
                out = np.asarray(run(), dtype=np.float64)
            except Exception as exc:  # noqa: BLE001
                if name == "fp32":
                    raise
                errors[name] = f"{type(exc).__name__}: {exc}"
                continue
            rate = items / max(time.perf_counter() - start, 1e-9)
            best[name] = max(best.get(name, 0.0), rate)
            scores[name] = out
            log.info("calibration: %s %.1f items/s", name, rate)
    ref = scores["fp32"]
    ref_quality = quality(ref) if quality is not None else None
    results = []
    for name in runners:
        if name in errors:
            results.append(PathResult(name, 0.0, float("nan"), float("nan"), None, False, errors[name]))
            continue
        pearson, spearman = _correlations(scores[name], ref)
        q = quality(scores[name]) if quality is not None else None
        why = []
        if not np.isfinite(scores[name]).all():
            why.append("non-finite scores")
        if not pearson >= min_correlation:
            why.append(f"Pearson {pearson:.5f} < {min_correlation}")
        if q is not None and ref_quality is not None and q < ref_quality - max_quality_loss - 1e-12:
            why.append(f"{quality_measure or 'quality'} {q:.4f} < fp32 {ref_quality:.4f} - {max_quality_loss}")
        results.append(PathResult(name, best[name], pearson, spearman, q, not why, "; ".join(why)))
    chosen = max((r for r in results if r.ok), key=lambda r: r.items_per_s).path
    return Decision(kind=kind, key=key, path=chosen, results=results, items=items, threads=threads,
                    min_correlation=min_correlation, max_quality_loss=max_quality_loss,
                    quality_measure=quality_measure, extra=dict(extra or {}))
