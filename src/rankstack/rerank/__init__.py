"""Rerankers: a PairScorer base (batching, depth, fusion with the first stage) and its backends:
cross-encoders (full or LoRA adapters), LLM strategies and ColBERT MaxSim.

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
    "PointwiseLLMReranker": "rankstack.rerank.llm.pointwise",
    "QueryLikelihoodReranker": "rankstack.rerank.llm.query_likelihood",
    "PRPReranker": "rankstack.rerank.llm.prp",
    "ListwiseReranker": "rankstack.rerank.llm.listwise",
    "ICRReranker": "rankstack.rerank.llm.icr",
    "ColBERTReranker": "rankstack.rerank.late_interaction",
    "merge_adapter": "rankstack.rerank.lora",
    "save_adapter": "rankstack.rerank.lora",
}

__all__ = list(_LAZY)

__getattr__ = lazy_getattr("rankstack.rerank", _LAZY)
