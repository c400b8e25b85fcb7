"""``rankstack retrieve``: flags derived from :class:`rankstack.recipes.index.RetrieveConfig`."""

from __future__ import annotations

import argparse

from rankstack.cli._common import add_verb
from rankstack.recipes.config import add_arguments, from_args
from rankstack.recipes.index import RetrieveConfig


def register(sub) -> None:
    p = add_verb(sub, "retrieve", "Retrieve with a registered first stage or a pipeline; writes a TREC run.",
                 "rankstack retrieve --collection scifact --split test --retriever bm25 -k 1000 --out bm25.run\n"
                 "rankstack retrieve --collection scifact --retriever 'bm25(k1=1.2, b=0.75)' --out b.run\n"
                 "rankstack retrieve --collection scifact --retriever dense --execution ray --workers 2 --out d.run")
    add_arguments(p, RetrieveConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rankstack.recipes import index

    print(index.run_retrieve(from_args(RetrieveConfig, args)).to_text())
    return 0
