"""How fast and how good are the MiniLM encoder's inference paths, against sentence-transformers' own fp32 encode.

Paths (rankstack ``precision``): torch fp32, bf16 autocast, torch dynamic int8, ONNX Runtime fused fp32 and
int8 (exported from the same weights), the packaged int8 ONNX (``onnx-minilm``); the peer is
``SentenceTransformer.encode`` fp32 on the same weights and max length (``st-encode-fp32``).

Speed: docs/s encoding the same random subset of corpus texts, **median of ``--rounds`` interleaved
rounds** (the machine is shared), ratios against ``st-encode-fp32`` from the same run.
Quality: nDCG@10 of exact (flat) dense retrieval with each path's embeddings, and the mean cosine of
each path's document vectors with torch fp32's. With ``--quality-docs 0`` over the full corpus
(embeddings from / into the cache, keyed by path); with ``--quality-docs N`` over a sub-corpus of N
documents: every document judged for the split's queries plus a seeded random sample of the rest.

    python benchmarks/bench_encode.py --collection scifact --timing-docs 128 --rounds 3 --threads 1 --quality-docs 1000
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from pathlib import Path

import numpy as np

from rankstack.data.beir import Collection
from rankstack.encode.base import _cache_folder, cached_encode, load_encoder, texts_checksum
from rankstack.evaluate import evaluate
from rankstack.retrieve.dense import DenseIndex, DenseRetriever

BACKENDS = {"torch-fp32": ("minilm", "fp32"), "torch-bf16": ("minilm", "bf16"), "torch-int8": ("minilm", "torch-int8"),
            "onnx-fp32": ("minilm", "onnx-fp32"), "onnx-int8": ("minilm", "onnx-int8"),
            "onnx-packaged-int8": ("onnx-minilm", "auto")}
PEER = "st-encode-fp32"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collection", default="scifact")
    ap.add_argument("--split", default="test")
    ap.add_argument("--timing-docs", type=int, default=512, help="random corpus texts timed per backend")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--cache-dir", type=Path, default=Path(".cache/rankstack"))
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--quality-backends", default=None, help="paths whose nDCG@10 is measured (default: all)")
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
                                batch_size=args.batch_size, progress=False, cache_dir=str(args.cache_dir))
                if BACKENDS[n][0] == "minilm" else
                load_encoder(BACKENDS[n][0], precision=BACKENDS[n][1], threads=args.threads,
                             batch_size=args.batch_size, progress=False) for n in names}
    import torch
    from sentence_transformers import SentenceTransformer

    from rankstack.encode.sentence_transformers import minilm_path

    torch.set_num_threads(args.threads)
    peer = SentenceTransformer(str(minilm_path()), device="cpu")
    runs = {PEER: lambda texts: peer.encode(texts, batch_size=args.batch_size, normalize_embeddings=True)}
    runs.update({n: (lambda texts, e=e: e.encode(texts)) for n, e in encoders.items()})
    for fn in runs.values():
        fn(subset[:32])  # warm-up (oneDNN kernels, ORT session)
    times: dict[str, list[float]] = {n: [] for n in runs}
    for r in range(args.rounds):
        for n, fn in runs.items():
            t = time.perf_counter()
            fn(subset)
            times[n].append(time.perf_counter() - t)
            print(f"round {r + 1} {n:20s} {len(subset) / times[n][-1]:7.1f} docs/s", flush=True)
    rates = {n: len(subset) / statistics.median(v) for n, v in times.items()}

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
    quality = args.quality_backends.split(",") if args.quality_backends else names
    for n, enc in encoders.items():
        if n not in quality:
            continue
        if len(rows) < len(texts) and _cache_folder(args.cache_dir, enc, texts_checksum(texts, ids)).is_dir():
            vectors[n] = cached_encode(enc, texts, ids, args.cache_dir)[rows]
        else:
            vectors[n] = cached_encode(enc, [texts[i] for i in rows], sub_ids, args.cache_dir, progress=True)
        index = DenseIndex.build(vectors[n], sub_ids, enc.encoder_id)
        run = DenseRetriever(enc, index, k=100)(queries)
        ndcg[n] = evaluate(run, qrels, ["nDCG@10"]).mean["nDCG@10"]

    ref = "torch-fp32" if "torch-fp32" in vectors else next(iter(vectors), None)
    lengths = [len(t) for t in subset]
    print(f"\n{args.collection}: timing on {len(subset)} random corpus texts (mean {np.mean(lengths):.0f} chars), "
          f"{args.threads} threads, batch {args.batch_size}, median of {args.rounds} interleaved rounds; "
          f"nDCG@10 over {'the full corpus' if len(rows) == len(texts) else 'a sub-corpus (all judged + random docs)'} "
          f"of {len(rows)} of {len(texts)} docs, {args.split} split, exact search\n")
    print(f"| path | precision (cache key) | docs/s | x {PEER} | nDCG@10 | mean cos vs {ref} |")
    print("|---|---|---:|---:|---:|---:|")
    print(f"| {PEER} | SentenceTransformer.encode | {rates[PEER]:.1f} | 1.00x | | |")
    for n in names:
        q = f"{ndcg[n]:.4f}" if n in ndcg else "—"
        cos = f"{float(np.mean(np.sum(vectors[n] * vectors[ref], axis=1))):.5f}" if n in vectors and ref else "—"
        print(f"| {n} | `{encoders[n].precision}` | {rates[n]:.1f} | {rates[n] / rates[PEER]:.2f}x | {q} | {cos} |")


if __name__ == "__main__":
    main()
