"""``rankstack train jpq``: flags derived from :class:`rankstack.recipes.jpq.JPQTrainConfig`."""

from __future__ import annotations

import argparse

from rankstack.cli._common import add_verb
from rankstack.recipes.config import add_arguments, from_args
from rankstack.recipes.jpq import JPQTrainConfig

EXAMPLE = """\
rankstack train jpq --collection scifact --m 48 --out indexes/scifact-jpq48          # 48 bytes/doc (32x)
rankstack train jpq --collection scifact --m 16 --train-encoder --time-budget 20 --out indexes/scifact-jpq16
rankstack retrieve --collection scifact --retriever "dense(index='indexes/scifact-jpq48')" --out jpq.run"""


def register_train(what) -> None:
    p = add_verb(what, "jpq", "Train a JPQ compressed dense index: FAISS OPQ/PQ centroids (and optionally the "
                 "query encoder) trained with a ranking loss over hard negatives from the current PQ index, "
                 "documents kept as PQ codes; saves a dense index folder that dense(index=FOLDER) loads.", EXAMPLE)
    add_arguments(p, JPQTrainConfig)
    p.set_defaults(func=run_jpq)


def run_jpq(args: argparse.Namespace) -> int:
    from rankstack.recipes import jpq

    print(jpq.run(from_args(JPQTrainConfig, args)).to_text())
    return 0
