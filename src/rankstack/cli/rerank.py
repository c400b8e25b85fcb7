"""``rankstack rerank``: rerank a TREC run with a trained cross-encoder; writes a TREC run."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from rankstack.cli._common import add_collection_args, add_verb, open_collection

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = add_verb(sub, "rerank", "Rerank the top k of a run with a cross-encoder (optionally fused with the "
                                "first-stage score); writes a TREC run.",
                 "rankstack rerank --model .cache/models/ce-scifact --collection scifact --split test "
                 "--run bm25.run -k 100 --out ce.run\n"
                 "rankstack rerank --model .cache/models/ce-scifact --collection scifact --run hybrid.run "
                 "-k 100 --interpolate 0.5 --out ce-interp.run")
    add_collection_args(p)
    p.add_argument("--model", required=True, help="model folder written by 'rankstack train reranker' "
                                                   "(or any local one-logit transformers model)")
    p.add_argument("--run", type=Path, required=True, help="TREC run to rerank (its queries come from --split)")
    p.add_argument("-k", type=int, default=100, help="rerank the top k per query; the rest stay below "
                                                     "(default: 100)")
    p.add_argument("--keep", type=int, default=None, help="documents written per query (default: all)")
    p.add_argument("--out", type=Path, required=True, help="TREC run file to write")
    fuse = p.add_mutually_exclusive_group()
    fuse.add_argument("--interpolate", type=float, default=None, metavar="ALPHA",
                      help="final = ALPHA * norm(reranker) + (1 - ALPHA) * norm(first stage)")
    fuse.add_argument("--rrf", action="store_true", help="reciprocal rank fusion with the first stage")
    p.add_argument("--norm", choices=("zscore", "minmax"), default="zscore",
                   help="score normalisation for --interpolate (default: zscore)")
    p.add_argument("--max-length", type=int, default=None, help="tokens per pair (default: the model's)")
    p.add_argument("--batch-size", type=int, default=16,
                   help="pairs per forward (16 ran faster per pair than 32 on a 2-core CPU)")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32", "bf16-weights"), default="auto",
                   help="auto = bf16 autocast where the CPU supports it, else fp32; bf16-weights = weights "
                        "cast to bf16 (fastest, scores ~0.99997 correlated with fp32)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--tag", default=None, help="run tag (default: the file stem)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rankstack.data.trec import read_run, write_run
    from rankstack.errors import InputError
    from rankstack.rerank.cross_encoder import CrossEncoderReranker

    if args.k < 1:
        raise InputError(f"-k must be a positive integer, got {args.k}")
    if args.interpolate is not None and not 0 <= args.interpolate <= 1:
        raise InputError(f"--interpolate must be in [0, 1], got {args.interpolate}",
                         fix="ALPHA is the reranker's weight: 1 = reranker only, 0 = first stage only")
    collection = open_collection(args)
    first = read_run(args.run)
    queries = collection.queries(args.split if args.split != "all" else None)
    missing = [q for q in first.query_ids if q not in queries]
    if missing:
        all_q = collection.queries(None)
        if any(q not in all_q for q in missing):
            raise InputError(f"run {args.run} has {len(missing)} queries not in the collection, e.g. {missing[0]!r}",
                             path=args.run, fix="rerank a run of the same collection")
        queries = all_q
    first = first.restrict(q for q in first.query_ids if q in queries).with_queries(queries)
    combine = "interpolate" if args.interpolate is not None else ("rrf" if args.rrf else None)
    reranker = CrossEncoderReranker(args.model, documents=collection, max_length=args.max_length,
                                    batch_size=args.batch_size, precision=args.precision, threads=args.threads,
                                    depth=args.k, combine=combine,
                                    alpha=args.interpolate if args.interpolate is not None else 0.5,
                                    norm=args.norm, progress=True)
    start = time.perf_counter()
    out = reranker(first)
    took = time.perf_counter() - start
    if args.keep:
        out = out.top_k(args.keep)
    write_run(out, args.out, tag=args.tag or args.out.stem)
    stats = reranker.last_stats
    print(f"wrote {args.out}: {len(out.query_ids)} queries, {len(out)} rows; {stats.get('pairs', 0)} pairs "
          f"in {took:.1f}s ({stats.get('pairs_per_s', 0):.0f} pairs/s, {reranker.precision_used})")
    return 0
