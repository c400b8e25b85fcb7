"""``rankstack train colbert``: flags derived from :class:`rankstack.recipes.colbert.ColBERTTrainConfig`."""

from __future__ import annotations

import argparse

from rankstack.cli._common import add_verb
from rankstack.recipes.colbert import ColBERTTrainConfig
from rankstack.recipes.config import add_arguments, from_args

EXAMPLE = """\
rankstack train colbert --collection scifact --n-negatives 1 --batch-size 16 --time-budget 20 \\
    --out .cache/models/colbert-scifact
rankstack retrieve --collection scifact --retriever "colbert(model='.cache/models/colbert-scifact') % 100" --out colbert.run
rankstack retrieve --collection scifact \\
    --retriever "bm25 % 100 >> colbert_rerank(model='.cache/models/colbert-scifact')" --out colbert-rerank.run"""


def register_train(what) -> None:
    p = add_verb(what, "colbert", "Train a ColBERT late-interaction model (MiniLM + a 128-d projection) on judged "
                 "queries with in-batch and BM25 hard negatives; saves a folder that the 'colbert' retriever and "
                 "the 'colbert_rerank' reranker load.", EXAMPLE)
    add_arguments(p, ColBERTTrainConfig)
    p.set_defaults(func=run_colbert)


def run_colbert(args: argparse.Namespace) -> int:
    from rankstack.recipes import colbert

    print(colbert.run(from_args(ColBERTTrainConfig, args)).to_text())
    return 0
