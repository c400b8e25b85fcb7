"""LLM backends behind one protocol (:mod:`rankstack.llm.base`): local transformers/GGUF models, an
OpenAI-compatible HTTP client, a scripted fake; an on-disk answer cache and cost accounting.

Lazy re-exports: importing this package does not import torch or transformers.
"""

from __future__ import annotations

from rankstack._lazy import lazy_getattr

_LAZY = {
    "Chat": "rankstack.llm.base",
    "Generation": "rankstack.llm.base",
    "Usage": "rankstack.llm.base",
    "LLMBackend": "rankstack.llm.base",
    "TransformersBackend": "rankstack.llm.transformers_backend",
    "check_gguf": "rankstack.llm.transformers_backend",
    "OpenAIBackend": "rankstack.llm.http",
    "FakeLM": "rankstack.llm.fake",
    "CachedBackend": "rankstack.llm.cache",
    "load_backend": "rankstack.llm.models",
    "model_file": "rankstack.llm.models",
}

__all__ = list(_LAZY)

__getattr__ = lazy_getattr("rankstack.llm", _LAZY)
