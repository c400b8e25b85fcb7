"""Label-free adaptation benchmark (results and commands: benchmarks/adapt.md).

Runs the CLI, so every figure is a command anyone can repeat; the collections' labels are used only
by `rankstack evaluate`:

    python benchmarks/bench_adapt.py --collection cranfield --generators ict llm-instruct
    python benchmarks/bench_adapt.py --collection cisi --generators ict --zero-shot .cache/models/ce-scifact
    python benchmarks/bench_adapt.py --collection cranfield --generators ict --dry-run   # print the commands

Per collection: BM25 and the untrained RRF hybrid (fuse(bm25, dense, method=rrf)) top 100; for every
generator `rankstack adapt` (timed; its report JSON has generation and training seconds), then the
adapted reranker over BM25's top 100 and over the hybrid's top 100 (`rankstack rerank`), each alone
and fused with its first stage by RRF (k=60, `fuse_runs` on the two run files); optionally a zero-shot reranker (the scifact-trained cross-encoder) the same way;
finally `rankstack evaluate` with paired tests against BM25 and against the hybrid. Outputs go to
--out (default .cache/adapt_bench/<collection>); a summary JSON lists every command with its wall time.

With --retriever-queries FILE (a synthetic-queries JSONL, e.g. the one `adapt` generated), the
bi-encoder is adapted too: `rankstack train biencoder --synthetic-queries FILE` (InfoNCE, BM25
negatives), then its dense run and RRF(BM25, adapted dense) join the comparison:

    python benchmarks/bench_adapt.py --collection cranfield --generators llm-instruct --tag labelfree \
        --out .cache/adapt_bench/cranfield-labelfree --retriever-queries QUERIES.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

BIN = str(Path(sys.executable).parent / "rankstack")


def sh(cmd: list[str], log: list[dict], dry: bool) -> float:
    """Run one CLI command under `nice -n 5`; record it and its wall time."""
    text = " ".join(shlex.quote(c) for c in cmd)
    print("$", text, flush=True)
    if dry:
        return 0.0
    t0 = time.perf_counter()
    subprocess.run(["nice", "-n", "5", *cmd], check=True)
    seconds = time.perf_counter() - t0
    log.append({"command": text.replace(BIN, "rankstack"), "seconds": round(seconds, 1)})
    return seconds


def fuse_file(first: Path, reranked: Path, out: Path) -> None:
    """RRF (k=60) of a first-stage run and its reranking: the same candidates, no second scoring pass."""
    from rankstack.data.trec import read_run, write_run
    from rankstack.retrieve.fusion import fuse_runs

    print(f"# fuse_runs([{first.name}, {reranked.name}], method='rrf', k=60) -> {out.name}", flush=True)
    write_run(fuse_runs([read_run(first), read_run(reranked)], method="rrf", k=60, name=out.stem), out, tag=out.stem)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--collection", required=True)
    p.add_argument("--generators", nargs="+", default=["ict"])
    p.add_argument("--selection", default="uniform")
    p.add_argument("--filters", default=None, help="passed to adapt (default: adapt's)")
    p.add_argument("--adapt-args", default="", help="more adapt flags, e.g. '--time-budget 15 --max-docs 600'")
    p.add_argument("--zero-shot", default=None, help="a trained cross-encoder to apply zero-shot")
    p.add_argument("--tag", default="", help="suffix of the adapted model's name (tells adapt-args variants apart)")
    p.add_argument("--rerank-args", default="", help="more rerank flags, e.g. '--precision bf16-weights --threads 2'")
    p.add_argument("--first-stages", nargs="+", default=["bm25", "hybrid"], choices=["bm25", "hybrid"])
    p.add_argument("--split", default="test")
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--models", type=Path, default=Path(".cache/models"))
    p.add_argument("--retriever-queries", type=Path, default=None,
                   help="also adapt the bi-encoder on this synthetic-queries JSONL (see above)")
    p.add_argument("--retriever-args", default="--method infonce --negatives bm25 --n-negatives 1 --epochs 3 "
                   "--batch-size 16 --lr 2e-5 --validation 30 --val-depth 20 --threads 2 --time-budget 10",
                   help="flags of 'rankstack train biencoder'")
    p.add_argument("--dry-run", action="store_true")
    args = p.parse_args(argv)
    coll, k = args.collection, str(args.k)
    out = args.out or Path(".cache/adapt_bench") / coll
    out.mkdir(parents=True, exist_ok=True)
    log: list[dict] = []
    base = ["--collection", coll, "--split", args.split]
    runs = {"bm25": out / "bm25.run", "hybrid": out / "hybrid.run"}
    if not runs["bm25"].exists():
        sh([BIN, "retrieve", *base, "--retriever", "bm25", "-k", k, "--out", str(runs["bm25"])], log, args.dry_run)
    if not runs["hybrid"].exists():
        sh([BIN, "retrieve", *base, "--retriever", "fuse(bm25, dense, method=rrf)", "-k", k,
            "--out", str(runs["hybrid"])], log, args.dry_run)
    rerankers: dict[str, str] = {}
    for gen in args.generators:
        tag = (f"{gen}-{args.selection}" + (f"-{args.filters.replace(',', '+')}" if args.filters else "")
               + (f"-{args.tag}" if args.tag else ""))
        model = args.models / f"adapt-{coll}-{tag}"
        if not (model / "manifest.json").exists():
            cmd = [BIN, "adapt", "--collection", coll, "--generator", gen, "--selection", args.selection,
                   "--out", str(model)] + (["--filters", args.filters] if args.filters else [])
            sh(cmd + shlex.split(args.adapt_args), log, args.dry_run)
        rerankers[f"adapt-{tag}"] = str(model)
    if args.zero_shot:
        rerankers["zeroshot"] = args.zero_shot
    for name, model in rerankers.items():
        for first in args.first_stages:
            run = out / f"{name}-{first}.run"
            if not run.exists():
                sh([BIN, "rerank", "--model", model, *base, "--run", str(runs[first]), "-k", k, "--out", str(run)]
                   + shlex.split(args.rerank_args), log, args.dry_run)
            fused = out / f"{name}-{first}-rrf.run"
            if not args.dry_run and not fused.exists():
                fuse_file(runs[first], run, fused)
    if args.retriever_queries is not None:
        bi = args.models / (f"adapt-{coll}-bi" + (f"-{args.tag}" if args.tag else ""))
        if not (bi / "manifest.json").exists():
            sh([BIN, "train", "biencoder", "--collection", coll, "--synthetic-queries", str(args.retriever_queries),
                "--out", str(bi)] + shlex.split(args.retriever_args), log, args.dry_run)
        for name, spec in (("dense", f"dense(encoder='{bi}')"), ("hybrid", f"fuse(bm25, dense(encoder='{bi}'), "
                                                                          "method=rrf)")):
            run = out / f"{bi.name}-{name}.run"
            if not run.exists():
                sh([BIN, "retrieve", *base, "--retriever", spec, "-k", k, "--out", str(run)], log, args.dry_run)
    # every run in the folder, so variants from earlier invocations are compared in the same tests
    mine = {str(out / f"{n}-{f}{s}.run") for n in rerankers for f in args.first_stages for s in ("", "-rrf")}
    all_runs = [str(runs["bm25"]), str(runs["hybrid"])] + sorted(
        mine | {str(r) for r in out.glob("*.run") if r.name not in ("bm25.run", "hybrid.run")})
    for baseline in ("bm25", "hybrid"):
        sh([BIN, "evaluate", *base, *all_runs, "-m", "nDCG@10", "-m", "AP", "--baseline", baseline,
            "--json", str(out / f"eval-vs-{baseline}.json")], log, args.dry_run)
    if not args.dry_run:
        reports = {n: json.loads(Path(m + ".adapt.json").read_text()) for n, m in rerankers.items()
                   if Path(m + ".adapt.json").exists()}
        old = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
        reports = {**old.get("adapt_reports", {}), **reports}
        summary = {"collection": coll, "commands": old.get("commands", []) + log, "adapt_reports": reports,
                   "cpu": subprocess.run(["sh", "-c", "lscpu | grep 'Model name'"], capture_output=True,
                                         text=True).stdout.strip(),
                   "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    raise SystemExit(main())
