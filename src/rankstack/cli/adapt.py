"""``rankstack adapt``: flags derived from :class:`rankstack.recipes.adapt.AdaptConfig`."""

from __future__ import annotations

import argparse

from rankstack.cli._common import add_verb
from rankstack.recipes.adapt import AdaptConfig
from rankstack.recipes.config import add_arguments, from_args

EXAMPLE = """\
rankstack adapt --collection cranfield --out .cache/models/ce-cranfield-adapted
rankstack rerank --model .cache/models/ce-cranfield-adapted --collection cranfield --run bm25.run -k 100 --out ce.run
rankstack adapt --collection scifact --generator llm-instruct --selection duqgen --filters inpars,roundtrip \\
    --teacher .cache/models/ce-scifact --real-split train --time-budget 30 --out .cache/models/ce-scifact-gpl
rankstack adapt --collection cisi --queries cisi-queries.jsonl --out m    # train on queries generated before"""


def register(sub) -> None:
    p = add_verb(sub, "adapt", "Label-free domain adaptation: generate queries for the collection's documents, "
                 "filter them, mine hard negatives and train a cross-encoder on them (no relevance labels needed); "
                 "writes a model folder that 'rankstack rerank' and experiment files load, and a JSON report "
                 "next to it.", EXAMPLE)
    add_arguments(p, AdaptConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rankstack.recipes import adapt

    print(adapt.run(from_args(AdaptConfig, args)).to_text())
    return 0
