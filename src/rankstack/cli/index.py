"""``rankstack index`` and ``rankstack search``: build, save and query a BM25 index on disk."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rankstack.cli._common import add_verb


def register(sub) -> None:
    p = add_verb(sub, "index", "Build a BM25 index of a collection and save it (atomically, with a manifest).",
                 "rankstack index --collection scifact --out indexes/scifact-bm25 --k1 0.9 --b 0.4")
    p.add_argument("--collection", required=True, help="a BEIR folder or a name under the data root")
    p.add_argument("--data-root", default=None, help="folder holding collections by name")
    p.add_argument("--out", type=Path, required=True, help="index folder to write (replaced atomically)")
    p.add_argument("--k1", type=float, default=0.9)
    p.add_argument("--b", type=float, default=0.4)
    p.add_argument("--method", default="lucene", help="lucene, robertson, atire, bm25l or bm25+")
    p.add_argument("--stemmer", default="english", help="Snowball stemmer name, or 'none'")
    p.add_argument("--stopwords", default="en", help="'en' or 'none'")
    p.add_argument("--fields", nargs="+", default=["title", "text"], help="document fields to index")
    p.set_defaults(func=run_index)

    s = add_verb(sub, "search", "Search a saved BM25 index and print the top documents.",
                 'rankstack search indexes/scifact-bm25 "microstructural development of the brain" -k 5')
    s.add_argument("index", type=Path, help="index folder written by 'rankstack index'")
    s.add_argument("query", help="query text")
    s.add_argument("-k", type=int, default=10, help="documents to show (default: 10)")
    s.set_defaults(func=run_search)


def _none(value: str) -> str | None:
    return None if value.lower() == "none" else value


def run_index(args: argparse.Namespace) -> int:
    from rankstack.data.beir import Collection
    from rankstack.retrieve.bm25 import BM25Retriever

    collection = Collection(args.collection, data_root=args.data_root)
    start = time.perf_counter()
    retriever = BM25Retriever.from_collection(collection, k1=args.k1, b=args.b, method=args.method,
                                              stemmer=_none(args.stemmer), stopwords=_none(args.stopwords),
                                              fields=args.fields)
    retriever.save(args.out)
    print(f"indexed {retriever.num_docs} documents of {collection.name} into {args.out} "
          f"in {time.perf_counter() - start:.1f}s")
    return 0


def run_search(args: argparse.Namespace) -> int:
    from rankstack.errors import InputError
    from rankstack.retrieve.bm25 import BM25Retriever

    if not args.query.strip():
        raise InputError("the query is empty", fix="give a query text")
    if args.k < 1:
        raise InputError(f"-k must be a positive integer, got {args.k}")
    retriever = BM25Retriever.load(args.index)
    [(docids, scores)] = retriever.search([args.query], k=args.k)
    if len(docids) == 0:
        print("no document matches any query term")
    for rank, (d, s) in enumerate(zip(docids.tolist(), scores.tolist()), start=1):
        print(f"{rank:>3}  {s:8.4f}  {d}")
    return 0
