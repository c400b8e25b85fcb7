"""``rankstack train biencoder``: flags derived from :class:`rankstack.recipes.biencoder.BiEncoderTrainConfig`."""

from __future__ import annotations

import argparse

from rankstack.cli._common import add_verb
from rankstack.recipes.biencoder import BiEncoderTrainConfig
from rankstack.recipes.config import add_arguments, from_args

EXAMPLE = """\
rankstack train biencoder --collection scifact --method infonce --n-negatives 1 --fn-filter \\
    --time-budget 20 --out .cache/models/bi-scifact
rankstack retrieve --collection scifact --retriever "dense(encoder='.cache/models/bi-scifact')" --out bi.run
rankstack train biencoder --collection scifact --method margin-mse --teacher .cache/models/ce-scifact \\
    --base .cache/models/bi-scifact --n-negatives 3 --time-budget 15 --out .cache/models/bi-mmse
rankstack train biencoder --collection scifact --method adore --time-budget 10 --out .cache/models/bi-adore
rankstack retrieve --collection scifact --retriever "dense(index='.cache/models/bi-adore/index')" --out adore.run
rankstack train biencoder --collection scifact --method ar2 --negatives dense --n-negatives 3 \\
    --teacher .cache/models/ce-scifact --time-budget 20 --out .cache/models/bi-ar2"""


def register_train(what) -> None:
    p = add_verb(what, "biencoder", "Train a dense bi-encoder retriever (MiniLM, mean pooling) on judged queries: "
                 "InfoNCE with in-batch and hard negatives, Margin-MSE / listwise-KL distillation from a "
                 "cross-encoder, ADORE (query encoder against a fixed index) or AR2 (retriever and ranker in "
                 "alternation); saves a sentence-transformers folder that 'dense(encoder=DIR)' loads.", EXAMPLE)
    add_arguments(p, BiEncoderTrainConfig)
    p.set_defaults(func=run_biencoder)


def run_biencoder(args: argparse.Namespace) -> int:
    from rankstack.recipes import biencoder

    print(biencoder.run(from_args(BiEncoderTrainConfig, args), progress=None).to_text())
    return 0
