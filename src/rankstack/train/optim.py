"""Optimiser and learning-rate schedule of the Trainer: parameter groups, decay rules, warm-up.

Why separate from the loop: these are pure functions of the model's parameter names and the step
count, testable without training, and the rules (a fresh head at 10x the learning rate, no decay
on biases and norm scales, linear warm-up) are shared by every learned scorer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from rankstack.errors import InputError

__all__ = ["OPTIMIZERS", "SCHEDULES", "lr_multiplier", "build_optimizer", "lr_factor", "fused_supported"]

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("linear", "constant", "cosine")


def lr_multiplier(name: str, param_groups: Mapping[str, float]) -> float:
    """The multiplier of the longest prefix in ``param_groups`` that ``name`` starts with (else 1.0)."""
    best, mult = -1, 1.0
    for prefix, m in param_groups.items():
        if name.startswith(prefix) and len(prefix) > best:
            best, mult = len(prefix), float(m)
    return mult


def fused_supported(device: str = "cpu") -> bool:
    """True when this torch has a fused (single-kernel) Adam/AdamW step for ``device``.

    torch >= 2.4 ships a fused CPU AdamW (one vectorised kernel over every parameter, instead of
    the ``foreach`` path's several passes); older builds raise on ``fused=True``, so probe once.
    """
    import torch

    key = str(device)
    if key not in _FUSED_PROBE:
        try:
            p = torch.nn.Parameter(torch.zeros(2, device=device))
            p.grad = torch.ones_like(p)
            torch.optim.AdamW([p], lr=1e-3, fused=True).step()
            _FUSED_PROBE[key] = True
        except (RuntimeError, TypeError, ValueError):
            _FUSED_PROBE[key] = False
    return _FUSED_PROBE[key]


_FUSED_PROBE: dict[str, bool] = {}


def build_optimizer(model: Any, optimizer: str | Callable[..., Any], lr: float, weight_decay: float,
                    param_groups: Mapping[str, float], fused: bool | None = False) -> Any:
    """The optimiser over ``model``'s trainable parameters, grouped by (lr multiplier, decay).

    Decoupled weight decay applies to weight matrices only (``dim >= 2``), not to biases and norm
    scales (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", 2019). A prefix in
    ``param_groups`` that matches no trainable parameter is an error (a typo would silently train
    the head at the base rate). ``fused`` (Adam/AdamW only): ``True`` uses torch's fused step and
    fails where this torch has none; ``None`` uses it where :func:`fused_supported`, else the default.
    The update is the same maths (to rounding), so a seeded run follows the same curve.
    """
    import torch

    groups: dict[tuple[float, bool], list[Any]] = {}
    matched = set()
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        for prefix in param_groups:
            if name.startswith(prefix):
                matched.add(prefix)
        decay = p.dim() >= 2
        groups.setdefault((lr_multiplier(name, param_groups), decay), []).append(p)
    unused = set(param_groups) - matched
    if unused:
        raise InputError(f"param_groups prefixes {sorted(unused)} match no trainable parameter",
                         fix="use prefixes of model.named_parameters() names")
    if not groups:
        raise InputError("the model has no trainable parameters")
    specs = [{"params": ps, "lr": lr * mult, "lr_multiplier": mult, "weight_decay": weight_decay if decay else 0.0}
             for (mult, decay), ps in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1]))]
    if callable(optimizer):
        return optimizer(specs)
    extra: dict[str, Any] = {}
    if optimizer in ("adam", "adamw"):
        device = next(iter(groups.values()))[0].device
        if fused is None:
            fused = fused_supported(device.type)
        elif fused and not fused_supported(device.type):
            raise InputError(f"this torch ({torch.__version__}) has no fused {optimizer} step on {device.type}",
                             fix="pass fused=None (use it where available) or fused=False")
        if fused:
            extra["fused"] = True
    elif fused:
        raise InputError(f"fused steps exist for adam and adamw only, not {optimizer!r}", fix="pass fused=False")
    if optimizer == "adamw":
        return torch.optim.AdamW(specs, lr=lr, **extra)
    if optimizer == "adam":
        return torch.optim.Adam(specs, lr=lr, **extra)
    return torch.optim.SGD(specs, lr=lr, momentum=0.9)


def lr_factor(step: int, total: int, warmup_ratio: float, schedule: str) -> float:
    """Learning-rate multiplier at optimiser ``step`` of ``total``: linear warm-up, then the schedule."""
    warm = int(round(warmup_ratio * total))
    if step < warm:
        return (step + 1) / (warm + 1)
    if schedule == "constant":
        return 1.0
    rest = max(1, total - warm)
    frac = min(1.0, (step - warm) / rest)
    if schedule == "linear":
        return max(0.0, 1.0 - frac)
    return 0.5 * (1.0 + math.cos(math.pi * frac))
