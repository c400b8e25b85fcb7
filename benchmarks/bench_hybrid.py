"""BM25, dense MiniLM (exact) and their fusions, nDCG@10 per collection.

Runs ``bm25``, ``dense`` and ``fuse(bm25, dense, method=rrf)`` (k=60) plus z-score CombSUM through
the pipeline API, each over the top 1000, with corpus embeddings from the cache.

    python benchmarks/bench_hybrid.py --collections scifact cranfield cisi --precision auto
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from rankstack.data.beir import Collection
from rankstack.evaluate import evaluate
from rankstack.pipeline.expression import parse_pipeline
from rankstack.registry import Context

TARGETS = {"scifact": (0.676, 0.645, 0.718), "cranfield": (0.352, 0.382, 0.411), "cisi": (0.372, 0.421, 0.451)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collections", nargs="+", default=["scifact", "cranfield", "cisi"])
    ap.add_argument("--split", default="test")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--cache-dir", type=Path, default=Path(".cache/rankstack"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"\nnDCG@10, {args.split} split, dense precision {args.precision}; reference values (NOTES.md) in brackets\n")
    print("| collection | queries | BM25 | dense MiniLM | RRF k=60 | CombSUM z-score |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.collections:
        coll = Collection(name)
        queries, qrels = coll.queries(args.split), coll.qrels(args.split)
        ctx = Context(collection=coll, cache_dir=args.cache_dir)
        bm25 = parse_pipeline("bm25 % 1000", ctx)
        dense = parse_pipeline(f"dense(precision='{args.precision}') % 1000", ctx)
        runs = {"bm25": bm25(queries), "dense": dense(queries)}
        from rankstack.retrieve.fusion import fuse_runs

        runs["rrf"] = fuse_runs([runs["bm25"], runs["dense"]], "rrf", k=60)
        runs["z"] = fuse_runs([runs["bm25"], runs["dense"]], "combsum", norm="z-score")
        m = {k: evaluate(r, qrels, ["nDCG@10"]).mean["nDCG@10"] for k, r in runs.items()}
        t = TARGETS.get(name, (float("nan"),) * 3)
        n = len(evaluate(runs["bm25"], qrels, ["nDCG@10"]).queries)
        print(f"| {name} | {n} | {m['bm25']:.4f} ({t[0]}) | {m['dense']:.4f} ({t[1]}) | {m['rrf']:.4f} ({t[2]}) | "
              f"{m['z']:.4f} |")


if __name__ == "__main__":
    main()
