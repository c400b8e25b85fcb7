"""``rankstack train cur-index``: flags derived from :class:`rankstack.recipes.cur.CURIndexConfig`."""

from __future__ import annotations

import argparse

from rankstack.cli._common import add_verb
from rankstack.recipes.config import add_arguments, from_args
from rankstack.recipes.cur import CURIndexConfig

EXAMPLE = """\
rankstack train cur-index --collection scifact --model .cache/models/ce-scifact --anchor-queries 50 \\
    --out .cache/indexes/cur-scifact
rankstack retrieve --collection scifact --retriever \\
    "bm25 % 100 >> adacur(model='.cache/models/ce-scifact', index='.cache/indexes/cur-scifact', budget=30)" --out ada.run
rankstack retrieve --collection scifact --retriever \\
    "adacur(model='.cache/models/ce-scifact', index='.cache/indexes/cur-scifact', items='corpus', budget=200)" \\
    --out ada-corpus.run"""


def register_train(what) -> None:
    p = add_verb(what, "cur-index", "Build the anchor index of CUR/ADACUR cross-encoder search: the cross-encoder's "
                 "scores of anchor (training) queries against every document, saved as a checksummed folder that "
                 "'adacur(index=...)' and 'anncur(index=...)' load.", EXAMPLE)
    add_arguments(p, CURIndexConfig)
    p.set_defaults(func=run_cur_index)


def run_cur_index(args: argparse.Namespace) -> int:
    from rankstack.recipes import cur

    print(cur.run(from_args(CURIndexConfig, args)).to_text())
    return 0
