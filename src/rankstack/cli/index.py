"""``rankstack index`` and ``rankstack search``: build, save and query a BM25 index on disk."""

from __future__ import annotations

import argparse
from pathlib import Path

from rankstack.cli._common import add_verb
from rankstack.recipes.config import add_arguments, from_args
from rankstack.recipes.index import IndexConfig


def register(sub) -> None:
    p = add_verb(sub, "index", "Build a BM25 index of a collection and save it (atomically, with a manifest).",
                 "rankstack index --collection scifact --out indexes/scifact-bm25 --k1 0.9 --b 0.4\n"
                 "rankstack index --collection scifact --out indexes/scifact-bm25 --retriever 'bm25(k1=1.2)' "
                 "--overwrite")
    add_arguments(p, IndexConfig)
    p.set_defaults(func=run_index)

    s = add_verb(sub, "search", "Search a saved BM25 index and print the top documents.",
                 'rankstack search indexes/scifact-bm25 "microstructural development of the brain" -k 5')
    s.add_argument("index", type=Path, help="index folder written by 'rankstack index'")
    s.add_argument("query", help="query text")
    s.add_argument("-k", type=int, default=10, help="documents to show (default: 10)")
    s.set_defaults(func=run_search)


def run_index(args: argparse.Namespace) -> int:
    from rankstack.recipes import index

    print(index.run(from_args(IndexConfig, args)).to_text())
    return 0


def run_search(args: argparse.Namespace) -> int:
    from rankstack.errors import InputError
    from rankstack.retrieve.bm25 import BM25Retriever

    if not args.query.strip():
        raise InputError("the query is empty", fix="give a query text")
    if args.k < 1:
        raise InputError(f"-k must be a positive integer, got {args.k}")
    [(docids, scores)] = BM25Retriever.load(args.index).search([args.query], k=args.k)
    if len(docids) == 0:
        print("no document matches any query term")
    for rank, (d, s) in enumerate(zip(docids.tolist(), scores.tolist()), start=1):
        print(f"{rank:>3}  {s:8.4f}  {d}")
    return 0
