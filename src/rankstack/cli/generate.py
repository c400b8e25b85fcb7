"""``rankstack generate-queries``: flags derived from :class:`rankstack.recipes.generate.GenerateConfig`."""

from __future__ import annotations

import argparse

from rankstack.cli._common import add_verb
from rankstack.recipes.config import add_arguments, from_args
from rankstack.recipes.generate import GenerateConfig

EXAMPLE = """\
rankstack generate-queries --collection cranfield --generator llm-instruct --selection duqgen --max-docs 400 \\
    --time-budget 20 --out .cache/synth/cranfield-llm-instruct-duqgen.jsonl
rankstack generate-queries --collection cranfield --generator llm-instruct --selection duqgen --max-docs 400 \\
    --out .cache/synth/cranfield-llm-instruct-duqgen.jsonl --resume      # continue an interrupted run
rankstack generate-queries --collection scifact --generator ict --max-docs 2000 --out scifact-ict.jsonl"""


def register(sub) -> None:
    p = add_verb(sub, "generate-queries", "Generate synthetic queries for a collection's documents (no-LLM title/"
                 "ict/salient, or SmolLM2/gemma prompts) into a resumable JSONL file with provenance; "
                 "documents are selected uniformly or by DUQGen's cluster sampling.", EXAMPLE)
    add_arguments(p, GenerateConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rankstack.recipes import generate

    print(generate.run(from_args(GenerateConfig, args)).to_text())
    return 0
