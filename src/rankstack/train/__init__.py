"""Training: the one :class:`Trainer` loop for every learned scorer, checkpoints, and model-agnostic
helpers (negative mining, false-negative filtering, curricula).

Why nothing model-specific lives here: ``train`` sits below ``ltr``, ``unbiased`` and ``recipes``
and imports none of them, nor ``rerank``; a workflow that trains a particular model (e.g. the
cross-encoder recipe in :mod:`rankstack.recipes.reranker`) brings its own data and collate. Names
load lazily so that importing ``rankstack.train`` (e.g. for curricula or negative mining, which
need no torch) does not import torch.
"""

from __future__ import annotations

from rankstack._lazy import lazy_getattr

_LAZY = {
    "Trainer": "rankstack.train.trainer",
    "FitResult": "rankstack.train.trainer",
    "TrainingDivergedError": "rankstack.train.trainer",
    "save_checkpoint": "rankstack.train.checkpoint",
    "load_checkpoint": "rankstack.train.checkpoint",
    "read_history": "rankstack.train.checkpoint",
}

__all__ = list(_LAZY)

__getattr__ = lazy_getattr("rankstack.train", _LAZY)
