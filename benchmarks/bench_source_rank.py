"""Where BM25 ranks a synthetic query's source document, and how often a reranker keeps BM25's first.

Why (issue 13, benchmarks/adapt.md "Eleventh session"): a cross-encoder that reads BM25's score in its
input (``--first-score-in-input``) learns whatever that score predicts in its training labels. With
synthetic queries the positive is the query's source document; if BM25 ranks it first for most kept
queries, "score 100" alone predicts the label and the model learns to keep BM25's first document first.
This prints both sides of that: the share of round-trip-kept synthetic queries whose source is BM25's
first (training), and, given a first-stage run and its reranking, the test queries whose first document
the reranker left in place, with the first stage's P@1 (how often that document is relevant).

    python benchmarks/bench_source_rank.py --collection cranfield \
        --queries .cache/adapt_bench/cranfield-s11/llm.jsonl --first bm25.run --reranked bm25cat.run
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collection", required=True)
    ap.add_argument("--queries", type=Path, required=True, help="synthetic queries JSONL ('rankstack generate-queries')")
    ap.add_argument("--roundtrip-k", type=int, default=20, help="the round-trip filter's k (adapt's default 20)")
    ap.add_argument("--first", type=Path, help="a first-stage run of the test queries (e.g. BM25's)")
    ap.add_argument("--reranked", type=Path, help="the reranking of --first")
    ap.add_argument("--split", default="test")
    ap.add_argument("--cache-dir", default=".cache/rankstack")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from rankstack import Collection, Context, parse_pipeline
    from rankstack.data.trec import read_run
    from rankstack.evaluate import evaluate
    from rankstack.synth.records import read_synthetic_queries
    from rankstack.types import Queries

    coll = Collection(args.collection)
    records = read_synthetic_queries(args.queries)
    queries = Queries(tuple(r.qid for r in records), tuple(r.text for r in records))
    ctx = Context(collection=coll, cache_dir=Path(args.cache_dir))
    top = {q: list(d) for q, d, _ in (parse_pipeline("bm25", ctx) % args.roundtrip_k)(queries).groups()}
    source = {r.qid: r.doc_id for r in records}
    kept = [q for q in source if source[q] in top.get(q, [])]
    first = sum(top[q][0] == source[q] for q in kept)
    out = {"synthetic_queries": len(records), "roundtrip_kept": len(kept), "source_is_bm25_first": first,
           "share": round(first / max(len(kept), 1), 4)}
    print(f"{args.queries}: {len(records)} queries, {len(kept)} kept by round trip (source in BM25's top "
          f"{args.roundtrip_k}); source is BM25's first for {first} ({out['share']:.1%})")
    if args.first and args.reranked:
        a = {q: d[0] for q, d, _ in read_run(args.first).groups()}
        b = {q: d[0] for q, d, _ in read_run(args.reranked).groups()}
        same = sum(a[q] == b.get(q) for q in a)
        p1 = float(evaluate(read_run(args.first), coll.qrels(args.split), "P@1").mean["P@1"])
        out.update({"test_queries": len(a), "first_kept_first": same, "first_stage_P@1": round(p1, 4)})
        print(f"{args.reranked} keeps {args.first}'s first document first on {same} of {len(a)} queries; "
              f"{args.first} P@1 = {p1:.4f}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
