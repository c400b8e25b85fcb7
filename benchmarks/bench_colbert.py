"""ColBERT on a BEIR collection: MaxSim reranking of BM25 and end-to-end retrieval, alone and fused with BM25.

For each model (``minilm`` = all-MiniLM-L6-v2 + an untrained, seeded random projection; plus any
``--model`` folder from ``rankstack train colbert``): nDCG@10 of

* ``rerank``: MaxSim over the BM25 top ``--depth`` (default 100);
* ``e2e-exhaustive``: exact MaxSim over every document;
* ``e2e-plaid``: PLAID-style centroid candidates + exact MaxSim on ``--ndocs``;
* ``rrf`` / ``zscore``: e2e-plaid fused with BM25 (RRF k=60; equal-weight z-score interpolation);

with paired significance vs BM25 (``rankstack.evaluate.compare``: t-test and randomization test,
Holm-corrected), queries/s of every stage in this one run (query encoding included), index bytes
and build time. The corpus token states are cached (``--cache-dir``), so only the first run encodes.

    .venv/bin/python benchmarks/bench_colbert.py --collection scifact \
        --model .cache/models/colbert-scifact --out benchmarks/colbert.json
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import time
from pathlib import Path


def cpu_name() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    return next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "?")


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collection", default="scifact")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--split", default="test")
    ap.add_argument("--model", action="append", default=[], help="trained ColBERT folder(s); 'minilm' always runs")
    ap.add_argument("--no-untrained", action="store_true", help="skip the untrained 'minilm' projection")
    ap.add_argument("--cache-dir", default=".cache/rankstack")
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--nprobe", type=int, nargs="+", default=[4, 1], help="PLAID probes per query token (each "
                    "value is one run; the first is fused with BM25)")
    ap.add_argument("--ndocs", type=int, default=1024)
    ap.add_argument("--threshold", type=float, default=0.4)
    ap.add_argument("--ncentroids", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--queries", type=int, default=None, help="subsample this many queries (seeded)")
    ap.add_argument("--out", default=None, help="JSON with every figure")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import numpy as np

    from rankstack.data.beir import Collection
    from rankstack.encode.colbert import ColBERTEncoder
    from rankstack.evaluate import compare, evaluate
    from rankstack.registry import Context, build
    from rankstack.rerank.late_interaction import ColBERTReranker
    from rankstack.retrieve.fusion import linear, rrf
    from rankstack.retrieve.late_interaction import ColBERTIndex, ColBERTRetriever, TokenStore
    from rankstack.types import Queries

    coll = Collection(args.collection, data_root=args.data_root)
    queries, qrels = coll.queries(args.split), coll.qrels(args.split)
    judged = set(qrels.to_dict())
    keep = [i for i, q in enumerate(queries.qids) if q in judged]
    if args.queries:
        keep = sorted(np.random.default_rng(0).choice(keep, size=min(args.queries, len(keep)), replace=False))
    queries = Queries(tuple(queries.qids[i] for i in keep), tuple(queries.texts[i] for i in keep))
    ctx = Context(collection=coll, cache_dir=Path(args.cache_dir))
    bm25_stage = build("bm25", "retriever", context=ctx)
    (bm25_stage.at_least(1000) % 1000)(queries)  # warm-up: the first call starts bm25s' threads
    bm25_full, t_bm25 = timed((bm25_stage.at_least(1000) % 1000), queries)
    bm25 = bm25_full.top_k(args.depth)
    runs = {"bm25": bm25_full.replace(name="bm25")}
    rows, info = [], {"cpu": cpu_name(), "date": time.strftime("%Y-%m-%d"), "queries": len(queries),
                      "collection": args.collection, "args": vars(args), "models": {}}
    qps = {"bm25": len(queries) / t_bm25}
    models = ([] if args.no_untrained else ["minilm"]) + list(args.model)
    for spec in models:
        tag = "untrained" if spec == "minilm" else Path(spec).name
        enc = ColBERTEncoder(spec, threads=args.threads, seed=0)
        store, t_store = timed(TokenStore.from_collection, enc, coll, args.cache_dir)
        index, t_index = timed(lambda s: ColBERTIndex.build(s, ncentroids=args.ncentroids, seed=0), store)
        m = {"encoder_id": enc.encoder_id, "tokens": int(len(index.vectors)), "index_bytes": index.nbytes(),
             "bytes_per_doc": index.nbytes() / len(index), "tokens_per_doc": len(index.vectors) / len(index),
             "store_seconds (cached states + projection)": t_store, "kmeans_seconds": t_index,
             "ncentroids": int(len(index.centroids)),
             "training": (enc.manifest or {}).get("training") if enc.manifest else None}
        reranker = ColBERTReranker(enc, store=index, depth=args.depth)
        r, t = timed(reranker, bm25)
        runs[f"{tag}:rerank"], qps[f"{tag}:rerank"] = r.replace(name=f"{tag}:rerank"), len(queries) / t
        for mode, nprobe in [("exhaustive", 1)] + [("plaid", p) for p in args.nprobe]:
            retr = ColBERTRetriever(enc, index, k=1000, candidates=mode, nprobe=nprobe, ndocs=args.ndocs,
                                    threshold=args.threshold)
            r, t = timed(retr, queries)
            name = f"{tag}:e2e-{mode}" + (f"-nprobe{nprobe}" if mode == "plaid" else "")
            runs[name], qps[name] = r.replace(name=name), len(queries) / t
            m[f"mean_candidates_{name.split(':')[1]}"] = retr.last_stats.get("mean_candidates")
        e2e = runs[f"{tag}:e2e-plaid-nprobe{args.nprobe[0]}"]
        runs[f"{tag}:rrf(bm25,e2e)"] = rrf([bm25_full, e2e], k=60, name=f"{tag}:rrf(bm25,e2e)")
        runs[f"{tag}:zscore(bm25,e2e)"] = linear([bm25_full, e2e], weights=[0.5, 0.5], norm="z-score",
                                                  name=f"{tag}:zscore(bm25,e2e)")
        runs[f"{tag}:rrf(bm25,rerank)"] = rrf([bm25, runs[f"{tag}:rerank"]], k=60, name=f"{tag}:rrf(bm25,rerank)")
        info["models"][tag] = m
    cmp = compare(runs, qrels, ["nDCG@10", "R@100"], baseline="bm25")
    print(f"# ColBERT on {args.collection} {args.split} ({len(queries)} queries), CPU {info['cpu']}, {info['date']}")
    print(cmp.to_text())
    print("\n| run | nDCG@10 | R@100 | queries/s |\n|---|---|---|---|")
    means = {n: evaluate(r, qrels, ["nDCG@10", "R@100"]).mean for n, r in runs.items()}
    for n in runs:
        q = f"{qps[n]:.1f}" if n in qps else "-"
        print(f"| {n} | {means[n]['nDCG@10']:.4f} | {means[n]['R@100']:.4f} | {q} |")
        rows.append({"run": n, **means[n], "queries_per_s": qps.get(n)})
    for tag, m in info["models"].items():
        print(f"\n{tag}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in m.items()
                                       if k != "training"))
    info["rows"], info["comparison"] = rows, cmp.to_dict()
    if args.out:
        Path(args.out).write_text(json.dumps(info, indent=2, default=str))


if __name__ == "__main__":
    main()
