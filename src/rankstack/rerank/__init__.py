"""Rerankers: a PairScorer base (batching, depth, fusion with the first stage) and its backends.

Lazy re-exports: importing this package does not import torch.
"""

from __future__ import annotations

from rankstack._lazy import lazy_getattr

_LAZY = {
    "PairScorer": "rankstack.rerank.base",
    "combine_scores": "rankstack.rerank.base",
    "normalise": "rankstack.rerank.base",
    "CrossEncoderReranker": "rankstack.rerank.cross_encoder",
    "save_cross_encoder": "rankstack.rerank.cross_encoder",
}

__all__ = list(_LAZY)

__getattr__ = lazy_getattr("rankstack.rerank", _LAZY)
