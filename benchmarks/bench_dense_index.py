"""What do approximate FAISS indexes cost in quality, and what do they save, on MiniLM vectors?

For each index type: bytes of the serialised index, bytes per vector of the codes, R@100 relative to
exact search (share of the exact top-100 that the index returns in its top 100, averaged over
queries), nDCG@10, and queries/s of the search alone (query vectors precomputed, all queries in one
batch, best of 3). PQ at 16x and 32x compression of 384-d fp32 vectors (1,536 bytes): m=96 and m=48
sub-quantisers of 8 bits. Corpus embeddings come from the embedding cache (same as ``dense``).

    python benchmarks/bench_dense_index.py --collection scifact --precision auto
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from rankstack.data.beir import Collection
from rankstack.encode.base import cached_encode, load_encoder
from rankstack.evaluate import evaluate
from rankstack.retrieve.dense import DenseIndex
from rankstack.types import Run

CONFIGS = [
    ("flat (exact)", dict(index="flat")),
    ("hnsw m=32 ef=128", dict(index="hnsw", m=32, ef_search=128)),
    ("ivf nlist=auto nprobe=auto", dict(index="ivf")),
    ("pq m=96x8 (16x)", dict(index="pq", m=96, nbits=8)),
    ("pq m=48x8 (32x)", dict(index="pq", m=48, nbits=8)),
    ("ivfpq m=96x8 (16x)", dict(index="ivfpq", m=96, nbits=8)),
    ("ivfpq m=48x8 (32x)", dict(index="ivfpq", m=48, nbits=8)),
    ("ivfpq m=48x8 (32x) nprobe=all", dict(index="ivfpq", m=48, nbits=8, nprobe=10_000)),
]


def to_run(qids, docids, scores, rows) -> Run:
    keep = rows >= 0
    return Run(np.repeat(np.asarray(qids), keep.sum(axis=1)), docids[rows[keep]], scores[keep].astype(float))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collection", default="scifact")
    ap.add_argument("--split", default="test")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache-dir", type=Path, default=Path(".cache/rankstack"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import faiss

    faiss.omp_set_num_threads(args.threads)
    coll = Collection(args.collection)
    docs = list(coll.corpus())
    ids = [d.docid for d in docs]
    queries, qrels = coll.queries(args.split), coll.qrels(args.split)
    enc = load_encoder("minilm", precision=args.precision, threads=args.threads, progress=False)
    vectors = cached_encode(enc, [d.contents for d in docs], ids, args.cache_dir, progress=True)
    qvecs = cached_encode(enc, list(queries.texts), list(queries.qids), args.cache_dir)
    exact_rows = None
    print(f"\n{args.collection} ({len(ids)} docs, {len(queries)} {args.split} queries), MiniLM {enc.precision} "
          f"vectors, d={vectors.shape[1]} (fp32: {vectors.shape[1] * 4} bytes/vector), {args.threads} threads\n")
    print("| index | bytes/vector (codes) | compression | index bytes | R@100 vs exact | nDCG@10 | queries/s | build s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, cfg in CONFIGS:
        t = time.perf_counter()
        idx = DenseIndex.build(vectors, ids, enc.encoder_id, seed=0, **cfg)
        build = time.perf_counter() - t
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            scores, rows = idx.search(qvecs, 100)
            best = min(best, time.perf_counter() - t)
        if exact_rows is None:
            exact_rows = rows
        overlap = np.mean([len(set(r[r >= 0]) & set(e)) / 100 for r, e in zip(rows, exact_rows)])
        run = to_run(queries.qids, idx.docids, scores, rows)
        ndcg = evaluate(run, qrels, ["nDCG@10"]).mean["nDCG@10"]
        code = idx.params.get("bytes_per_vector", vectors.shape[1] * 4)
        print(f"| {label} | {code:g} | {vectors.shape[1] * 4 / code:.0f}x | {idx.nbytes():,} | {overlap:.3f} | "
              f"{ndcg:.4f} | {len(queries) / best:,.0f} | {build:.1f} |")


if __name__ == "__main__":
    main()
