"""Label-free training data: synthetic queries for sampled documents, and the filters that keep the good ones.

Modules: :mod:`records` (the ``SyntheticQuery`` record and its resumable JSONL file), generators
(title, inverse cloze, salient terms, instruct LLM, InPars few-shot), selection (uniform, DUQGen
clustering), filters (InPars top fraction by log-probability, round-trip consistency). Papers:
InPars (Bonifacio et al. 2022), DUQGen (Chandradevan et al. 2024), GPL (Wang et al. 2022).
Lazy re-exports: importing this package imports neither torch nor faiss.
"""

from __future__ import annotations

from rankstack._lazy import lazy_getattr

_LAZY = {
    "SyntheticQuery": "rankstack.synth.records",
    "write_synthetic_queries": "rankstack.synth.records",
    "read_synthetic_queries": "rankstack.synth.records",
    "read_synthetic_header": "rankstack.synth.records",
    "repair_torn_tail": "rankstack.synth.records",
}

__all__ = list(_LAZY)

__getattr__ = lazy_getattr("rankstack.synth", _LAZY)
