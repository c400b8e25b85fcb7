"""Workflows: one module and one typed config per workflow; the only place workflows live.

Why: the CLI, experiment/TOML files and the HTTP service all run the same workflows (train a
reranker, cross-validate LTR, simulate clicks, run a ULTR study or an experiment). Each recipe
declares its defaults once, in a frozen dataclass, and exposes ``run(config) -> result``; every
front end derives its options from that config (:mod:`rankstack.recipes.config`) and calls ``run``.
Recipes sit above every library package and below ``cli``/``service`` only.

| module | configs | entry points |
|---|---|---|
| ``reranker`` | RerankerTrainConfig | run (train a cross-encoder), export_checkpoint |
| ``reranker_apply`` | RerankConfig | run (rerank a run file) |
| ``ltr`` | CVConfig, TrainConfig | run (k-fold CV), run_train |
| ``clicks`` | SimulateConfig | run (simulate a click log) |
| ``ultr`` | TrainConfig, StudyConfig | run_train, run (the study), load_config |
| ``experiment`` | ExperimentConfig | run, run_experiment, load_experiment |
| ``index`` | IndexConfig, RetrieveConfig, EvaluateConfig | run, run_retrieve, run_evaluate |
| ``prf`` | NeuralPRFConfig | run (train neural dense PRF) |
| ``splade`` | SpladeTrainConfig | run (train a SPLADE / inference-free model) |
| ``colbert`` | ColBERTTrainConfig | run (train ColBERT) |
| ``lora_llm`` | LlmLoraConfig | run (LoRA LLM pointwise reranker) |
| ``robust`` | RobustConfig, AugmentConfig | run (shift/perturb/attack/certify), load_config, run_augment |
| ``serve`` | ServeConfig | load (build + warm up the served pipeline) |
| ``scale`` | SynthCorpusConfig | run (write a synthetic BEIR collection) |
| ``generate`` | GenerateConfig | run (synthetic queries for a corpus, resumable JSONL) |
| ``adapt`` | AdaptConfig | run (label-free adaptation: generate, filter, train a reranker) |
| ``student`` | StudentConfig | run (distil a cross-encoder into a 2-4 layer student) |
| ``cur`` | CURIndexConfig | run (the anchor-query x item matrix of ANNCUR/ADACUR) |
| ``biencoder`` | BiEncoderTrainConfig | run (train a bi-encoder: InfoNCE, distillation, ADORE, AR2) |
| ``jpq`` | JPQTrainConfig | run (train a JPQ compressed dense index) |
"""

from __future__ import annotations

from rankstack._lazy import lazy_getattr

_LAZY = {
    "RerankerTrainConfig": "rankstack.recipes.reranker",
    "RerankConfig": "rankstack.recipes.reranker_apply",
    "CVConfig": "rankstack.recipes.ltr",
    "SimulateConfig": "rankstack.recipes.clicks",
    "StudyConfig": "rankstack.recipes.ultr",
    "ExperimentConfig": "rankstack.recipes.experiment",
    "run_experiment": "rankstack.recipes.experiment",
    "load_experiment": "rankstack.recipes.experiment",
    "IndexConfig": "rankstack.recipes.index",
    "RetrieveConfig": "rankstack.recipes.index",
    "EvaluateConfig": "rankstack.recipes.index",
    "NeuralPRFConfig": "rankstack.recipes.prf",
    "SpladeTrainConfig": "rankstack.recipes.splade",
    "ColBERTTrainConfig": "rankstack.recipes.colbert",
    "LlmLoraConfig": "rankstack.recipes.lora_llm",
    "RobustConfig": "rankstack.recipes.robust",
    "AugmentConfig": "rankstack.recipes.robust",
    "ServeConfig": "rankstack.recipes.serve",
    "SynthCorpusConfig": "rankstack.recipes.scale",
    "GenerateConfig": "rankstack.recipes.generate",
    "AdaptConfig": "rankstack.recipes.adapt",
    "StudentConfig": "rankstack.recipes.student",
    "CURIndexConfig": "rankstack.recipes.cur",
    "BiEncoderTrainConfig": "rankstack.recipes.biencoder",
    "JPQTrainConfig": "rankstack.recipes.jpq",
}

__all__ = list(_LAZY)

__getattr__ = lazy_getattr("rankstack.recipes", _LAZY)
