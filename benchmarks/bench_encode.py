"""How fast and how good are the MiniLM encoders: torch fp32, torch bf16 autocast, ONNX int8.

Speed: docs/s encoding the same random subset of corpus texts with each backend, best of ``--rounds``
interleaved rounds (the machine is shared: interleaving and best-of keep the ratios fair).
Quality: nDCG@10 of exact (flat) dense retrieval with each backend's embeddings, and the mean cosine
of each backend's document vectors with torch fp32's. With ``--quality-docs 0`` over the full corpus
(embeddings from / into the cache); with ``--quality-docs N`` over a sub-corpus of N documents: every
document judged for the split's queries plus a seeded random sample of the rest (rows are sliced from
the full-corpus cache when it exists, so backends are compared on identical documents).

    python benchmarks/bench_encode.py --collection scifact --timing-docs 512 --threads 2 --quality-docs 0
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from rankstack.data.beir import Collection
from rankstack.encode.base import _cache_folder, cached_encode, load_encoder, texts_checksum
from rankstack.evaluate import evaluate
from rankstack.retrieve.dense import DenseIndex, DenseRetriever

BACKENDS = {"torch-fp32": ("minilm", "fp32"), "torch-bf16": ("minilm", "bf16"), "onnx-int8": ("onnx-minilm", "auto")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collection", default="scifact")
    ap.add_argument("--split", default="test")
    ap.add_argument("--timing-docs", type=int, default=512, help="random corpus texts timed per backend")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--cache-dir", type=Path, default=Path(".cache/rankstack"))
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--quality-docs", type=int, default=0, help="0: full corpus; N: judged + random docs")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    coll = Collection(args.collection)
    docs = list(coll.corpus())
    texts, ids = [d.contents for d in docs], [d.docid for d in docs]
    queries, qrels = coll.queries(args.split), coll.qrels(args.split)
    rng = np.random.default_rng(0)
    subset = [texts[i] for i in rng.choice(len(texts), min(args.timing_docs, len(texts)), replace=False)]

    names = args.backends.split(",")
    encoders = {n: load_encoder(BACKENDS[n][0], precision=BACKENDS[n][1], threads=args.threads,
                                batch_size=args.batch_size, progress=False) for n in names}
    for enc in encoders.values():
        enc.encode(subset[:32])  # warm-up (oneDNN kernels, ORT session)
    rates = {n: 0.0 for n in names}
    for _ in range(args.rounds):
        for n, enc in encoders.items():
            t = time.perf_counter()
            enc.encode(subset)
            rates[n] = max(rates[n], len(subset) / (time.perf_counter() - t))

    rows = np.arange(len(texts))
    if args.quality_docs:
        judged = {d for d in qrels.docids.tolist()}
        pos = {d: i for i, d in enumerate(ids)}
        keep = sorted(pos[d] for d in judged if d in pos)
        rest = np.setdiff1d(rows, keep)
        extra = rng.choice(rest, max(0, min(args.quality_docs - len(keep), len(rest))), replace=False)
        rows = np.sort(np.r_[keep, extra]).astype(int)
    sub_ids = [ids[i] for i in rows]
    vectors, ndcg = {}, {}
    for n, enc in encoders.items():
        if len(rows) < len(texts) and _cache_folder(args.cache_dir, enc, texts_checksum(texts, ids)).is_dir():
            vectors[n] = cached_encode(enc, texts, ids, args.cache_dir)[rows]
        else:
            vectors[n] = cached_encode(enc, [texts[i] for i in rows], sub_ids, args.cache_dir, progress=True)
        index = DenseIndex.build(vectors[n], sub_ids, enc.encoder_id)
        run = DenseRetriever(enc, index, k=100)(queries)
        ndcg[n] = evaluate(run, qrels, ["nDCG@10"]).mean["nDCG@10"]

    ref = "torch-fp32" if "torch-fp32" in names else names[0]
    lengths = [len(t) for t in subset]
    print(f"\n{args.collection}: timing on {len(subset)} random corpus texts (mean {np.mean(lengths):.0f} chars), "
          f"{args.threads} threads, batch {args.batch_size}, best of {args.rounds} interleaved rounds; "
          f"nDCG@10 over {'the full corpus' if len(rows) == len(texts) else 'a sub-corpus (all judged + random docs)'} "
          f"of {len(rows)} of {len(texts)} docs, {args.split} split, exact search\n")
    print(f"| backend | encoder id | docs/s | speed vs {ref} | nDCG@10 | mean cos vs {ref} |")
    print("|---|---|---:|---:|---:|---:|")
    for n in names:
        cos = float(np.mean(np.sum(vectors[n] * vectors[ref], axis=1)))
        print(f"| {n} | `{encoders[n].encoder_id}` | {rates[n]:.1f} | {rates[n] / rates[ref]:.2f}x | "
              f"{ndcg[n]:.4f} | {cos:.5f} |")


if __name__ == "__main__":
    main()
