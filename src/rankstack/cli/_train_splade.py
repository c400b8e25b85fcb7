"""``rankstack train splade``: flags derived from :class:`rankstack.recipes.splade.SpladeTrainConfig`."""

from __future__ import annotations

import argparse

from rankstack.cli._common import add_verb
from rankstack.recipes.config import add_arguments, from_args
from rankstack.recipes.splade import SpladeTrainConfig

EXAMPLE = """\
rankstack train splade --collection scifact --inference-free --regulariser idf-flops --time-budget 15 \\
    --out .cache/models/splade-if-scifact
rankstack train splade --collection scifact --teacher ensemble --loss listwise_kl --lambda-d 1e-3 \\
    --out .cache/models/splade-scifact
rankstack retrieve --collection scifact --retriever "splade_if(model='.cache/models/splade-if-scifact')" --out sif.run"""


def register_train(what) -> None:
    p = add_verb(what, "splade", "Train a SPLADE learned sparse model (full, or inference-free with idf-weighted "
                 "query tokens) by distillation from a cross-encoder or a dense + sparse ensemble, with FLOPS or "
                 "IDF-aware FLOPS regularisation; saves a folder that 'splade' and 'splade_if' load.", EXAMPLE)
    add_arguments(p, SpladeTrainConfig)
    p.set_defaults(func=run_splade)


def run_splade(args: argparse.Namespace) -> int:
    from rankstack.recipes import splade

    print(splade.run(from_args(SpladeTrainConfig, args)).to_text())
    return 0
