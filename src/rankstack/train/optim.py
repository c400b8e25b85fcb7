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

__all__ = ["OPTIMIZERS", "SCHEDULES", "lr_multiplier", "build_optimizer", "lr_factor"]

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("linear", "constant", "cosine")


def lr_multiplier(name: str, param_groups: Mapping[str, float]) -> float:
    """The multiplier of the longest prefix in ``param_groups`` that ``name`` starts with (else 1.0)."""
    best, mult = -1, 1.0
    for prefix, m in param_groups.items():
        if name.startswith(prefix) and len(prefix) > best:
            best, mult = len(prefix), float(m)
    return mult


def build_optimizer(model: Any, optimizer: str | Callable[..., Any], lr: float, weight_decay: float,
                    param_groups: Mapping[str, float]) -> Any:
    """The optimiser over ``model``'s trainable parameters, grouped by (lr multiplier, decay).

    Decoupled weight decay applies to weight matrices only (``dim >= 2``), not to biases and norm
    scales (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", 2019). A prefix in
    ``param_groups`` that matches no trainable parameter is an error (a typo would silently train
    the head at the base rate).
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
    if optimizer == "adamw":
        return torch.optim.AdamW(specs, lr=lr)
    if optimizer == "adam":
        return torch.optim.Adam(specs, lr=lr)
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
