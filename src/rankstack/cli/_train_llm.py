"""``rankstack train llm-reranker``: LoRA fine-tuning of a small LLM as a pointwise yes/no reranker; flags
derived from :class:`rankstack.recipes.lora_llm.LlmLoraConfig`."""

from __future__ import annotations

import argparse

from rankstack.cli._common import add_verb
from rankstack.recipes.config import add_arguments, from_args
from rankstack.recipes.lora_llm import LlmLoraConfig

EXAMPLE = """\
rankstack train llm-reranker --collection scifact --max-steps 60 --batch-size 2 --n-negatives 3 \\
    --lora-rank 8 --doc-tokens 192 --threads 2 --out .cache/models/smollm2-lora-scifact
rankstack retrieve --collection scifact --split test \\
    --retriever "bm25 % 20 >> llm_lora(adapter='.cache/models/smollm2-lora-scifact')" --out llm.run"""


def register_train(what) -> None:
    p = add_verb(what, "llm-reranker", "Fine-tune a small LLM (SmolLM2-135M-Instruct by default) with LoRA as a "
                 "pointwise reranker (score = logit(Yes) - logit(No)); saves an adapter folder that "
                 "llm_lora(adapter=DIR) loads.", EXAMPLE)
    add_arguments(p, LlmLoraConfig)
    p.set_defaults(func=run_llm_reranker)


def run_llm_reranker(args: argparse.Namespace) -> int:
    from rankstack.recipes import lora_llm

    print(lora_llm.run(from_args(LlmLoraConfig, args)).to_text())
    return 0
