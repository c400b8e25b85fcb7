"""Pseudo-relevance feedback: BM25 vs BM25 >> RM3 >> BM25 and BM25 >> Bo1 >> BM25; dense vs dense PRF.

nDCG@10 and R@1000 per collection, with significance against each method's base (paired t-test †,
randomization test ‡, Holm-corrected, rankstack.evaluate.compare) and queries/s of the whole pipeline
(first stage + expansion + second search; dense query embeddings are encoded, not read from cache).
Defaults are Pyserini's RM3 (fb_docs=10, fb_terms=10, orig_weight=0.5), PyTerrier's Bo1 (fb_docs=3,
fb_terms=10) and the Rocchio dense PRF baseline (fb_docs=3, alpha=1, beta=0.5).

    python benchmarks/bench_prf.py --collections scifact cranfield cisi msmarco_dl19_subset
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from rankstack.data.beir import Collection
from rankstack.evaluate import compare
from rankstack.pipeline.expression import parse_pipeline
from rankstack.registry import Context
from rankstack.retrieve.prf_dense import DensePRF

MEASURES = ["nDCG@10", "R@1000"]


def _timed(stage, queries):
    stage(queries.subset(queries.qids[:2]))  # warm-up: loads models, builds term counts
    start = time.perf_counter()
    run = stage(queries)
    return run, len(queries) / (time.perf_counter() - start)


def _cells(comparison, name, qps):
    out = []
    for m in MEASURES:
        s = comparison.stats[m][name]
        marks = "" if name == comparison.baseline else \
            ("†" if s.t_p_holm < comparison.alpha else "") + ("‡" if s.perm_p_holm < comparison.alpha else "")
        out.append(f"{s.mean:.4f}{marks}")
    return out + [f"{qps:,.0f}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collections", nargs="+", default=["scifact", "cranfield", "cisi", "msmarco_dl19_subset"])
    ap.add_argument("--split", default="test")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--cache-dir", type=Path, default=Path(".cache/rankstack"))
    ap.add_argument("--no-dense", action="store_true", help="sparse methods only")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print("| collection | queries | method | nDCG@10 | R@1000 | queries/s |")
    print("|---|---:|---|---:|---:|---:|")
    for name in args.collections:
        coll = Collection(name)
        queries, qrels = coll.queries(args.split), coll.qrels(args.split)
        ctx = Context(collection=coll, cache_dir=args.cache_dir)
        rows = []
        sparse = {"BM25": "bm25 % 1000", "BM25 >> RM3 >> BM25": "bm25 >> rm3 >> bm25 % 1000",
                  "BM25 >> Bo1 >> BM25": "bm25 >> bo1 >> bm25 % 1000"}
        runs, qps = {}, {}
        for label, expr in sparse.items():
            runs[label], qps[label] = _timed(parse_pipeline(expr, ctx), queries)
        cmp = compare(runs, qrels, MEASURES, baseline="BM25")
        rows += [[label] + _cells(cmp, label, qps[label]) for label in sparse]
        if not args.no_dense:
            dense = parse_pipeline(f"dense(precision='{args.precision}')", ctx)  # encodes the corpus once (cached)
            dense.cache_dir = None  # time query encoding, not the query-embedding cache
            druns, dqps = {}, {}
            druns["dense"], dqps["dense"] = _timed(dense % 1000, queries)
            prf = dense % 1000 >> DensePRF(dense, fb_docs=3, alpha=1.0, beta=0.5) % 1000
            druns["dense >> dense PRF"], dqps["dense >> dense PRF"] = _timed(prf, queries)
            dcmp = compare(druns, qrels, MEASURES, baseline="dense")
            rows += [[label] + _cells(dcmp, label, dqps[label]) for label in druns]
        for row in rows:
            print(f"| {name} | {len(cmp.queries)} | " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
