"""Synthetic query generation: throughput (queries/s, batched vs unbatched) and peak memory per generator.

Each generator runs in its own subprocess (so ``ru_maxrss`` is that generator's peak) on the same
``--docs`` scifact documents (uniform selection, seed 0). LLM generators load their model once and
then alternate batched and unbatched (batch size 1) passes ``--repeats`` times (A/B/A/B...), so both
see the same machine load; medians are reported. ``--prompts`` also measures the llm-instruct prompt
variants on the same documents (kept / rejected by reason). Unbatched = one prompt per
``model.generate`` call, i.e. what a hand-written transformers loop does (the peer baseline).

    nice -n 5 .venv/bin/python benchmarks/bench_synth.py --docs 48 --repeats 3 --prompts \\
        --json benchmarks/synth_results.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

GENERATORS = ("title", "ict", "salient", "llm-instruct", "inpars")


def _docs(collection: str, n: int):
    from rankstack.data.beir import Collection
    from rankstack.synth.selection import select_uniform

    docs = list(Collection(collection).corpus())
    sel = select_uniform(len(docs), n, seed=0)
    return docs, [docs[i] for i in sel.indices]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(args: argparse.Namespace) -> dict:
    from rankstack.synth.generators import build_generator

    llm = args.generator in ("llm-instruct", "inpars")
    corpus, docs = _docs(args.collection, args.llm_docs if llm and args.llm_docs else args.docs)
    row: dict = {"generator": args.generator, "docs": len(docs)}
    t0 = time.perf_counter()
    if args.generator in ("llm-instruct", "inpars"):
        from rankstack.llm.models import load_backend

        model = "smollm2" if args.generator == "llm-instruct" else "gemma3-270m"
        backend = load_backend(model, threads=args.threads, batch_size=args.batch_size, cache=False,
                               precision=args.precision)
        row["precision"] = backend.precision_used
        row["load_seconds"] = round(time.perf_counter() - t0, 2)
        gen = build_generator(args.generator, backend=backend, max_doc_tokens=args.max_doc_tokens)
        runs: dict[str, list[float]] = {"batched": [], "unbatched": []}
        kept: dict[str, int] = {}
        rejected: dict[str, dict] = {}
        for _ in range(args.repeats):
            for mode, bs in (("batched", args.batch_size), ("unbatched", 1)):
                backend.batch_size = bs
                t = time.perf_counter()
                out = []
                step = bs if mode == "unbatched" else len(docs)
                for i in range(0, len(docs), step):
                    out += gen.generate(docs[i:i + step], seed=0)
                runs[mode].append(time.perf_counter() - t)
                kept[mode] = sum(g.rejected is None for g in out)
                rej: dict[str, int] = {}
                for g in out:
                    if g.rejected:
                        rej[g.rejected] = rej.get(g.rejected, 0) + 1
                rejected[mode] = rej
                row.setdefault("examples", [g.text for g in out if g.text][:5])
        for mode, secs in runs.items():
            med = statistics.median(secs)
            row[mode] = {"seconds": [round(s, 2) for s in secs], "median_seconds": round(med, 2),
                         "docs_per_second": round(len(docs) / med, 3), "kept": kept[mode],
                         "queries_per_second": round(kept[mode] / med, 3), "rejected": rejected[mode]}
        row["batched_speedup"] = round(row["unbatched"]["median_seconds"] / row["batched"]["median_seconds"], 2)
        if args.prompts and args.generator == "llm-instruct":
            backend.batch_size = args.batch_size
            row["prompts"] = {}
            for variant in ("question", "query", "bare"):
                g2 = build_generator("llm-instruct", backend=backend, prompt=variant, max_doc_tokens=args.max_doc_tokens)
                out = g2.generate(docs, seed=0)
                rej = {}
                for g in out:
                    if g.rejected:
                        rej[g.rejected] = rej.get(g.rejected, 0) + 1
                ok = [g for g in out if g.text]
                row["prompts"][variant] = {
                    "kept": len(ok), "rejected": rej,
                    "mean_words": round(statistics.mean(len(g.text.split()) for g in ok), 1) if ok else 0,
                    "mean_score": round(statistics.mean(g.score for g in ok), 3) if ok else None,
                    "examples": [g.text for g in ok][:3]}
    else:
        gen = build_generator(args.generator)
        t = time.perf_counter()
        gen.fit(corpus)
        row["fit_seconds"] = round(time.perf_counter() - t, 3)
        secs = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            out = gen.generate(docs, seed=0)
            secs.append(time.perf_counter() - t)
        med = statistics.median(secs)
        kept = sum(g.rejected is None for g in out)
        row["batched"] = {"seconds": [round(s, 5) for s in secs], "median_seconds": round(med, 5), "kept": kept,
                          "queries_per_second": round(kept / med, 1)}
        row["examples"] = [g.text for g in out if g.text][:3]
    row["peak_rss_mb"] = round(_peak_mb(), 1)
    return row


def coverage_table(collections: list[str], n: int, seeds: int) -> list[dict]:
    """Coverage of uniform vs DUQGen selections of ``n`` documents on the same k-means clustering
    (K by the elbow, as DUQGen picks it); medians over ``seeds`` seeds."""
    import numpy as np

    from rankstack.data.beir import Collection
    from rankstack.encode import cached_encode, load_encoder
    from rankstack.synth.selection import coverage, elbow_k, kmeans, sample_clusters, select_uniform

    rows = []
    enc = load_encoder("minilm")
    for name in collections:
        docs = list(Collection(name).corpus())
        x = cached_encode(enc, [d.contents for d in docs], [d.docid for d in docs], ".cache/rankstack")
        k, _ = elbow_k(x, [5, 10, 20, 50, 100, 200], seed=0)
        assign, centroids, _ = kmeans(x, k, seed=0)
        res: dict[str, list[dict]] = {"uniform": [], "duqgen": []}
        for seed in range(seeds):
            res["uniform"].append(coverage(assign, select_uniform(len(docs), n, seed).indices, k))
            res["duqgen"].append(coverage(assign, np.asarray(sample_clusters(x, assign, centroids, n, seed=seed)), k))
        for method, covs in res.items():
            rows.append({"collection": name, "docs": len(docs), "selected": n, "clusters": k, "method": method,
                         **{key: statistics.median(c[key] for c in covs)
                            for key in ("clusters_hit", "relative_entropy", "max_share")}})
            r = rows[-1]
            print(f"{name:10s} K={k:3d} {method:8s} clusters hit {r['clusters_hit']:.0f}/{k}  relative entropy "
                  f"{r['relative_entropy']:.3f}  max share {r['max_share']:.3f}", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--collection", default="scifact")
    p.add_argument("--docs", type=int, default=48)
    p.add_argument("--llm-docs", type=int, default=None, help="documents for the LLM generators (default --docs)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-doc-tokens", type=int, default=200)
    p.add_argument("--precision", default="fp32", choices=("auto", "fp32", "bf16"),
                   help="LLM generators (fp32: the precision of the recorded results; bench_llm_precision.py compares)")
    p.add_argument("--generators", nargs="+", default=list(GENERATORS), choices=GENERATORS)
    p.add_argument("--prompts", action="store_true", help="also compare the llm-instruct prompt variants")
    p.add_argument("--json", type=Path)
    p.add_argument("--coverage", nargs="+", metavar="COLLECTION", help="only compare uniform vs DUQGen coverage")
    p.add_argument("--generator", help=argparse.SUPPRESS)  # worker mode
    args = p.parse_args()
    if args.coverage:
        rows = coverage_table(args.coverage, args.docs, args.repeats)
        if args.json:
            args.json.write_text(json.dumps({"meta": {"cpu": _cpu()}, "coverage": rows}, indent=1) + "\n")
        return
    if args.generator:
        print(json.dumps(worker(args)))
        return
    rows = []
    for g in args.generators:
        cmd = [sys.executable, __file__, "--generator", g, "--collection", args.collection, "--docs", str(args.docs),
               "--repeats", str(args.repeats),
               *(["--llm-docs", str(args.llm_docs)] if args.llm_docs else []), "--batch-size", str(args.batch_size), "--threads", str(args.threads),
               "--max-doc-tokens", str(args.max_doc_tokens), "--precision", args.precision] + (["--prompts"] if args.prompts else [])
        res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
        if res.returncode != 0:
            print(f"{g}: failed\n{res.stderr[-2000:]}", file=sys.stderr)
            continue
        row = json.loads(res.stdout.strip().splitlines()[-1])
        rows.append(row)
        b = row["batched"]
        line = f"{g:13s} batched {b['queries_per_second']:>9} q/s (kept {b['kept']}/{row['docs']})"
        if "unbatched" in row:
            u = row["unbatched"]
            line += f"  unbatched {u['queries_per_second']} q/s  speedup x{row['batched_speedup']}"
        print(line + f"  peak RSS {row['peak_rss_mb']} MB", flush=True)
    meta = {"cpu": _cpu(), "uptime": os.popen("uptime").read().strip(), "args": {k: v for k, v in vars(args).items()
                                                                                 if k != "json"}}
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, default=str) + "\n")
    print(meta["uptime"])


def _cpu() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()
