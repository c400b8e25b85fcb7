"""Training: the one :class:`Trainer` loop for every learned scorer, and checkpoint helpers.

Names load lazily so that importing ``rankstack.train`` (e.g. for curricula or negative mining,
which need no torch) does not import torch.
"""

from __future__ import annotations

from rankstack._lazy import lazy_getattr

_LAZY = {
    "Trainer": "rankstack.train.trainer",
    "FitResult": "rankstack.train.trainer",
    "TrainingDivergedError": "rankstack.train.trainer",
    "save_checkpoint": "rankstack.train.trainer",
    "load_checkpoint": "rankstack.train.trainer",
    "bf16_support": "rankstack.train.trainer",
    "resolve_precision": "rankstack.train.trainer",
}

__all__ = list(_LAZY)

__getattr__ = lazy_getattr("rankstack.train", _LAZY)
