"""``rankstack retrieve``: run a first stage (or any pipeline) over a collection's queries."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from rankstack.cli._common import add_cache_arg, add_collection_args, add_verb, cache_dir, open_collection
from rankstack.data.trec import write_run
from rankstack.pipeline.expression import parse_pipeline
from rankstack.registry import Context

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = add_verb(sub, "retrieve", "Retrieve with a registered first stage or a pipeline; writes a TREC run.",
                 "rankstack retrieve --collection scifact --split test --retriever bm25 -k 1000 --out bm25.run\n"
                 "rankstack retrieve --collection scifact --retriever 'bm25(k1=1.2, b=0.75)' --out b.run")
    add_collection_args(p)
    p.add_argument("--retriever", default="bm25",
                   help="registered first stage or pipeline expression (default: bm25)")
    p.add_argument("-k", type=int, default=1000, help="documents kept per query (default: 1000)")
    p.add_argument("--out", type=Path, required=True, help="TREC run file to write")
    p.add_argument("--tag", default=None, help="run tag (default: the file stem)")
    add_cache_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rankstack.errors import InputError

    if args.k < 1:
        raise InputError(f"-k must be a positive integer, got {args.k}")
    collection = open_collection(args)
    queries = collection.queries(args.split)
    context = Context(collection=collection, cache_dir=cache_dir(args))
    stage = parse_pipeline(args.retriever, context) % args.k
    start = time.perf_counter()
    result = stage(queries)
    took = time.perf_counter() - start
    write_run(result, args.out, tag=args.tag or args.out.stem)
    print(f"wrote {args.out}: {len(result.query_ids)} queries, {len(result)} rows "
          f"({len(queries) / max(took, 1e-9):.0f} queries/s)")
    return 0
