"""Distilled students vs their teacher: nDCG@10 on scifact test and pairs/s (results: benchmarks/student.md).

    python benchmarks/bench_student.py effectiveness --models .cache/models/ce-scifact .cache/models/ce-l2 \
        --depth 100 --precision bf16-weights --threads 2
    python benchmarks/bench_student.py speed --teacher .cache/models/ce-scifact --students .cache/models/ce-l2 \
        --queries 10 --depth 20 --rounds 3 --threads 2

``effectiveness``: each model reranks BM25's top ``depth`` for every scifact test query (pair scores
cached per model under .cache/rerank_bench/scores, shared with bench_rerank.py); nDCG@10 alone and
interpolated with BM25 (z-score, alpha 0.5: the README recipe's ``--interpolate 0.5``), with paired
t-tests against the first model (the teacher). ``speed``: ``sentence_transformers.CrossEncoder.predict``
fp32 on the teacher (the baseline of issue 14) against rankstack's paths on the teacher and the
students, same pairs and max length, interleaved over ``--rounds``; medians and ratios of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))

from bench_rerank import OUT, _rerank_all, first_stage  # noqa: E402
from bench_train_step import cpu_name  # noqa: E402

from rankstack.data.beir import Collection  # noqa: E402
from rankstack.evaluate import compare, evaluate  # noqa: E402


def layers_of(model: str) -> int:
    return int(json.loads((Path(model) / "config.json").read_text())["num_hidden_layers"])


def cmd_effectiveness(args: argparse.Namespace) -> None:
    coll = Collection("scifact")
    qrels = coll.qrels("test")
    bm25 = first_stage("scifact", "test", "bm25", 100, OUT)
    if args.queries:
        bm25 = bm25.restrict(bm25.query_ids[: args.queries])
    rows, runs = {}, {"bm25": bm25}
    for model in args.models:
        tag = f"bm25-{args.depth}"
        got, stats = _rerank_all(model, coll, bm25, args.depth, args.threads, tag, OUT, precision=args.precision)
        name = Path(model).name
        runs[f"{name} alone"], runs[f"{name} interp"] = got["alone"], got["interp-zscore"]
        rows[name] = {"layers": layers_of(model), **stats}
    measures = ["nDCG@10"]
    res = {k: evaluate(r, qrels, measures).mean["nDCG@10"] for k, r in runs.items()}
    teacher = Path(args.models[0]).name
    table = {}
    for kind in ("alone", "interp") if len(args.models) > 1 else ():
        cmp = compare({k: v for k, v in runs.items() if k.endswith(kind)}, qrels, measures,
                      baseline=f"{teacher} {kind}")
        table[kind] = cmp
    n = len(bm25.query_ids)
    print(f"\nscifact test, {n} queries, BM25 top {args.depth} reranked ({args.precision}); BM25 {res['bm25']:.4f}")
    print("| model | layers | nDCG@10 alone | Δ teacher | nDCG@10 interp. z-score with BM25 | Δ teacher |")
    print("|---|---|---|---|---|---|")
    for model in args.models:
        name = Path(model).name
        a, i = res[f"{name} alone"], res[f"{name} interp"]
        print(f"| {name} | {rows[name]['layers']} | {a:.4f} | {a - res[f'{teacher} alone']:+.4f} | {i:.4f} | "
              f"{i - res[f'{teacher} interp']:+.4f} |")
    for kind, cmp in table.items():
        print(f"\n{kind} vs teacher:\n{cmp.to_text() if hasattr(cmp, 'to_text') else cmp}")
    (OUT / f"student-effectiveness-{args.depth}.json").write_text(json.dumps(
        {"queries": n, "depth": args.depth, "precision": args.precision, "ndcg10": res, "models": rows,
         "cpu": cpu_name(), "load": os.getloadavg()}, indent=1, default=str))


def cmd_speed(args: argparse.Namespace) -> None:
    import torch
    from sentence_transformers import CrossEncoder

    from rankstack.rerank.cross_encoder import CrossEncoderReranker

    torch.set_num_threads(args.threads)
    coll = Collection("scifact")
    bm25 = first_stage("scifact", "test", "bm25", 100, OUT)
    sub = bm25.restrict(bm25.query_ids[: args.queries]).top_k(args.depth)
    q, d = [sub.queries[x] for x in sub.qids], coll.doc_texts(sub.docids)
    teacher = CrossEncoderReranker(args.teacher, precision="fp32")
    ml = teacher.max_length
    ce = CrossEncoder(args.teacher, device="cpu", max_length=ml)
    identity = torch.nn.Identity()
    paths = {"teacher CrossEncoder.predict fp32": lambda: ce.predict(list(zip(q, d)), batch_size=32,
                                                                      activation_fn=identity)}
    for model in [args.teacher, *args.students]:
        for precision in args.precisions:
            rr = CrossEncoderReranker(model, precision=precision, batch_size=16, threads=args.threads)
            if rr.precision_used != precision:
                continue
            paths[f"{Path(model).name} ({layers_of(model)} layers) rankstack {precision}"] = (lambda rr=rr: rr.score(q, d))
            if args.compile and precision in ("fp32", "bf16-weights"):
                rc = CrossEncoderReranker(model, precision=precision, batch_size=16, threads=args.threads, compile=True)
                t = time.perf_counter()
                rc.score(q, d)  # compiles each shape bucket once (not timed: reported)
                print(f"compiling {Path(model).name} {precision}: {time.perf_counter() - t:.1f} s", flush=True)
                paths[f"{Path(model).name} ({layers_of(model)} layers) rankstack {precision} + compile"] = (
                    lambda rc=rc: rc.score(q, d))
    times: dict[str, list[float]] = {k: [] for k in paths}
    for rnd in range(args.rounds):
        for label, fn in paths.items():
            t = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - t)
            print(f"round {rnd + 1} {label:60s} {len(q) / times[label][-1]:7.1f} pairs/s", flush=True)
    base = len(q) / statistics.median(times["teacher CrossEncoder.predict fp32"])
    print(f"\n{len(q)} pairs, max length {ml}, {args.threads} threads, {cpu_name()}, load {os.getloadavg()}")
    print("| path | pairs/s (median) | x teacher CrossEncoder.predict fp32 | median of per-round ratios |")
    print("|---|---|---|---|")
    res = {}
    ref = times["teacher CrossEncoder.predict fp32"]
    for label, ts in times.items():
        pps = len(q) / statistics.median(ts)
        per_round = statistics.median(a / b for a, b in zip(ref, ts))
        res[label] = {"pairs_per_s": pps, "ratio": pps / base, "ratio_per_round_median": per_round, "seconds": ts}
        print(f"| {label} | {pps:.1f} | {pps / base:.2f} | {per_round:.2f} |")
    (OUT / "student-speed.json").write_text(json.dumps({"pairs": len(q), "results": res, "cpu": cpu_name()},
                                                       indent=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("effectiveness")
    e.add_argument("--models", nargs="+", required=True, help="teacher first, then students")
    e.add_argument("--depth", type=int, default=100)
    e.add_argument("--queries", type=int, default=None, help="only the first N test queries (default: all)")
    e.add_argument("--precision", default="bf16-weights")
    s = sub.add_parser("speed")
    s.add_argument("--teacher", required=True)
    s.add_argument("--students", nargs="+", required=True)
    s.add_argument("--queries", type=int, default=10)
    s.add_argument("--depth", type=int, default=20)
    s.add_argument("--rounds", type=int, default=3)
    s.add_argument("--precisions", nargs="+", default=["fp32", "bf16-weights"])
    s.add_argument("--compile", action="store_true", help="also time each model with compile=True")
    for q in (e, s):
        q.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    {"effectiveness": cmd_effectiveness, "speed": cmd_speed}[args.cmd](args)


if __name__ == "__main__":
    main()
