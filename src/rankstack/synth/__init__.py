"""Label-free training data: synthetic queries for sampled documents, and the filters that keep the good ones.

Modules: :mod:`records` (the ``SyntheticQuery`` record and its resumable JSONL file),
:mod:`generators` (title, inverse cloze, salient terms) and :mod:`llm_generators` (instruct LLM,
InPars few-shot), :mod:`quality` (cleaning and rejection of outputs), :mod:`selection` (uniform,
DUQGen clustering, coverage), :mod:`filters` (InPars top fraction by log-probability, round-trip
consistency); the training side (labels, negatives, GPL) is :mod:`training`. Papers:
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
    "Generated": "rankstack.synth.generators",
    "QueryGenerator": "rankstack.synth.generators",
    "build_generator": "rankstack.synth.generators",
    "GENERATORS": "rankstack.synth.generators",
    "InstructGenerator": "rankstack.synth.llm_generators",
    "InParsGenerator": "rankstack.synth.llm_generators",
    "clean_query": "rankstack.synth.quality",
    "rejection_reason": "rankstack.synth.quality",
    "Selection": "rankstack.synth.selection",
    "select_uniform": "rankstack.synth.selection",
    "select_duqgen": "rankstack.synth.selection",
    "coverage": "rankstack.synth.selection",
    "FilterReport": "rankstack.synth.filters",
    "inpars_filter": "rankstack.synth.filters",
    "round_trip_filter": "rankstack.synth.filters",
    "bm25_search": "rankstack.synth.filters",
}

__all__ = list(_LAZY)

__getattr__ = lazy_getattr("rankstack.synth", _LAZY)
