"""Cross-encoder reranking benchmarks (results and commands: benchmarks/rerank.md).

    python benchmarks/bench_rerank.py prepare                 # first-stage runs (cached)
    python benchmarks/bench_rerank.py effectiveness --model DIR   # scifact: BM25/hybrid x reranker x fusion
    python benchmarks/bench_rerank.py fuse3 --model DIR --depth 30   # CE + BM25 + dense, z-score sum
    python benchmarks/bench_rerank.py zeroshot --model DIR    # cranfield, cisi, msmarco_dl19_subset
    python benchmarks/bench_rerank.py speed --model DIR       # pairs/s: rankstack's paths vs CrossEncoder
                                                              # (--model minilm: MiniLM + a fresh head)
    python benchmarks/bench_rerank.py validation --model DIR  # held-out training queries: inference length
    python benchmarks/bench_rerank.py cost --model DIR --paths onnx-int8   # nDCG@10 of paths vs fp32, all test queries

Every table is printed and also written as JSON under --out (default .cache/rerank_bench).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from rankstack.data.beir import Collection  # noqa: E402
from rankstack.data.trec import read_run, write_run  # noqa: E402
from rankstack.evaluate import compare, evaluate  # noqa: E402
from rankstack.registry import Context, build  # noqa: E402
from rankstack.types import Run  # noqa: E402

CACHE = Path(".cache/rankstack")
OUT = Path(".cache/rerank_bench")
ZERO_SHOT = ("cranfield", "cisi", "msmarco_dl19_subset")
log = logging.getLogger("bench_rerank")


def first_stage(collection: str, split: str, name: str, k: int = 100, out: Path = OUT) -> Run:
    """BM25, dense or RRF-hybrid run (top k), cached as a TREC run file."""
    path = out / "runs" / f"{collection}-{split}-{name}-{k}.run"
    coll = Collection(collection)
    queries = coll.queries(split)
    if path.is_file():
        return read_run(path, name=name).with_queries(queries)
    ctx = Context(collection=coll, cache_dir=CACHE)
    if name == "hybrid":
        from rankstack.retrieve.fusion import fuse_runs

        a = first_stage(collection, split, "bm25", 1000, out)
        b = first_stage(collection, split, "dense", 1000, out)
        run = fuse_runs([a, b], method="rrf", k=60).top_k(k).renamed("hybrid")
    else:
        run = (build(name, "retriever", context=ctx) % k)(queries).renamed(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_run(run, path, tag=name)
    return run.with_queries(queries)


def cmd_prepare(args) -> None:
    for split in ("train", "test"):
        for name in ("bm25", "dense", "hybrid"):
            t = time.time()
            run = first_stage("scifact", split, name, 100, args.out)
            if split == "test":
                q = Collection("scifact").qrels(split)
                print(f"scifact {split} {name}: nDCG@10 {evaluate(run, q, 'nDCG@10').mean['nDCG@10']:.4f} "
                      f"({time.time() - t:.0f}s)", flush=True)
    for c in ZERO_SHOT:
        run = first_stage(c, "test", "bm25", 100, args.out)
        print(f"{c} bm25: nDCG@10 {evaluate(run, Collection(c).qrels('test'), 'nDCG@10').mean['nDCG@10']:.4f}")


def fresh_head_model(out: Path = OUT / "minilm-fresh-head") -> str:
    """all-MiniLM-L6-v2 + a seeded fresh one-logit head, saved once: speed does not depend on the
    weights, so this stands in for a trained cross-encoder when none exists yet."""
    if not (out / "manifest.json").is_file():
        import torch

        from rankstack.rerank.cross_encoder import CrossEncoderReranker

        torch.manual_seed(0)
        CrossEncoderReranker("minilm", precision="fp32", max_length=192).save(out, overwrite=True)
    return str(out)


def _reranker(model: str, coll: Collection, **kw):
    from rankstack.rerank.cross_encoder import CrossEncoderReranker

    return CrossEncoderReranker(fresh_head_model() if model == "minilm" else model, documents=coll, **kw)


def _rerank_all(model: str, coll: Collection, run: Run, depth: int, threads: int | None, tag: str,
                out: Path, precision: str = "auto", max_length: int | None = None) -> tuple[dict[str, Run], dict]:
    """Score the top `depth` (pair scores cached per model and collection, so runs that share
    pairs -- BM25 and hybrid -- score them once), then derive alone / interpolated / RRF runs."""
    from rankstack.rerank.base import combine_scores

    suffix = "" if max_length is None else f"-len{max_length}"
    cache = out / "scores" / f"{Path(model).name}-{coll.name}-{precision}{suffix}.json"
    known = json.loads(cache.read_text()) if cache.is_file() else {"pairs": {}, "stats": []}
    top = run.top_k(depth)
    keys = [f"{q}\t{d}" for q, d in zip(top.qids.tolist(), top.docids.tolist())]
    todo = [i for i, k in enumerate(keys) if k not in known["pairs"]]
    stats = {"pairs": len(keys), "new_pairs": len(todo)}
    if todo:
        rr = _reranker(model, coll, depth=depth, threads=threads, precision=precision, progress=True,
                       max_length=max_length)
        q = [top.queries[str(top.qids[i])] for i in todo]
        scores = rr.score(q, coll.doc_texts([top.docids[i] for i in todo]))
        known["pairs"].update({keys[i]: float(s) for i, s in zip(todo, scores)})
        stats.update(rr.last_stats, precision=rr.precision_used, max_length=rr.max_length)
        known["stats"].append(dict(stats, tag=tag))
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(known))
    else:
        old = next((s for s in known["stats"] if s.get("tag") == tag), {})
        stats.update({k: v for k, v in old.items() if k in ("pairs_per_s", "precision", "max_length")})
    scores = np.array([known["pairs"][k] for k in keys])
    runs = {}
    for method, alpha, norm in ((None, 1.0, "zscore"), ("interpolate", 0.5, "zscore"),
                                ("interpolate", 0.5, "minmax"), ("rrf", 0.5, "zscore")):
        parts, pos = [], 0
        for (qid, d_all, s_all), (_, d, s) in zip(run.groups(), top.groups()):
            rr = combine_scores(scores[pos:pos + len(d)], s, d, method, alpha, norm)
            pos += len(d)
            tail = len(d_all) - len(d)  # ranks below the depth stay below, in first-stage order
            parts.append(np.concatenate([rr, rr.min() - 1.0 - np.arange(tail)]) if tail else rr)
        label = "alone" if method is None else (f"interp-{norm}" if method == "interpolate" else "rrf")
        runs[label] = run.replace(scores=np.concatenate(parts), name=f"{tag}>>ce-{label}")
    return runs, stats


def cmd_effectiveness(args) -> None:
    coll = Collection("scifact")
    qrels = coll.qrels("test")
    results = {}
    bm25 = first_stage("scifact", "test", "bm25", 100, args.out).renamed("bm25")
    hybrid = first_stage("scifact", "test", "hybrid", 100, args.out).renamed("hybrid")
    runs = {"bm25": bm25, "hybrid": hybrid}
    for tag, base in (("bm25", bm25), ("hybrid", hybrid)):
        derived, stats = _rerank_all(args.model, coll, base, args.depth, args.threads, tag, args.out)
        results[f"{tag} rerank stats"] = stats
        for label, r in derived.items():
            runs[f"{tag}>>ce {label}"] = r
    cmp = compare(runs, qrels, ["nDCG@10", "R@100"], baseline="bm25")
    print(cmp.to_text())
    results["comparison"] = cmp.to_dict()
    cmp2 = compare({k: v for k, v in runs.items() if k.startswith("hybrid")}, qrels, ["nDCG@10"], baseline="hybrid")
    print(cmp2.to_text())
    results["comparison_vs_hybrid"] = cmp2.to_dict()
    raw = {r: round(v["t_p"], 4) for r, v in cmp.to_dict()["stats"]["nDCG@10"].items() if r != "bm25"}
    print("raw (uncorrected) paired t-test p vs bm25, nDCG@10:", raw)
    (args.out / f"effectiveness-{args.depth}.json").write_text(json.dumps(results, indent=1, default=str))


def cmd_fuse3(args) -> None:
    """One pre-declared variant: equal-weight z-score sum of CE, BM25 and dense over the hybrid's top
    `depth` (a missing first-stage score counts as that run's minimum); pair scores from the cache."""
    from rankstack.rerank.base import normalise

    coll = Collection("scifact")
    qrels = coll.qrels("test")
    hybrid = first_stage("scifact", "test", "hybrid", 100, args.out)
    derived, _ = _rerank_all(args.model, coll, hybrid, args.depth, args.threads, "hybrid", args.out)
    ce = derived["alone"].top_k(args.depth)
    firsts = [first_stage("scifact", "test", n, 1000, args.out).to_dict() for n in ("bm25", "dense")]
    parts, control, qids, docids = [], [], [], []
    for q, d, s in ce.groups():
        total = np.zeros(len(d))
        for f in firsts:
            fq = f.get(q, {})
            lo = min(fq.values()) if fq else 0.0
            total = total + normalise(np.array([fq.get(str(x), lo) for x in d]), "zscore")
        control.append(total / 2)
        parts.append((total + normalise(s, "zscore")) / 3)
        qids += [q] * len(d)
        docids += [str(x) for x in d]
    fused = Run(np.array(qids), np.array(docids), np.concatenate(parts), name="hybrid>>ce 3-way z")
    no_ce = Run(np.array(qids), np.array(docids), np.concatenate(control), name="control: z(bm25)+z(dense)")
    runs = {"bm25": first_stage("scifact", "test", "bm25", 100, args.out).renamed("bm25"),
            "hybrid": hybrid.renamed("hybrid"), "control: z(bm25)+z(dense), same candidates": no_ce,
            "hybrid>>ce 3-way z": fused}
    cmp = compare(runs, qrels, ["nDCG@10"], baseline="bm25")
    print(cmp.to_text())
    cmp2 = compare({k: v for k, v in runs.items() if k != "bm25"}, qrels, ["nDCG@10"], baseline="hybrid")
    print(cmp2.to_text())
    cmp3 = compare({k: runs[k] for k in list(runs)[2:]}, qrels, ["nDCG@10"], baseline=list(runs)[2])
    print(cmp3.to_text())


def cmd_zeroshot(args) -> None:
    results = {}
    for c in args.collections:
        coll = Collection(c)
        qrels = coll.qrels("test")
        bm25 = first_stage(c, "test", "bm25", 100, args.out).renamed("bm25")
        derived, stats = _rerank_all(args.model, coll, bm25, args.depth, args.threads, "bm25", args.out)
        runs = {"bm25": bm25, **{f"ce {k}": v for k, v in derived.items()}}
        cmp = compare(runs, qrels, ["nDCG@10"], baseline="bm25")
        print(f"== {c} ({stats['pairs']} pairs, {stats.get('pairs_per_s', 0):.0f} pairs/s {stats.get('precision')})")
        print(cmp.to_text(), flush=True)
        results[c] = {"stats": stats, "comparison": cmp.to_dict()}
    (args.out / "zeroshot.json").write_text(json.dumps(results, indent=1, default=str))


def cmd_validation(args) -> None:
    """Choices made without the test set: the reranker alone and interpolated over BM25's top `depth`
    for the training queries held out for validation (the same seeded slice the trainer used), at
    each inference max length in --lengths."""
    from rankstack.recipes.reranker_data import split_queries

    coll = Collection("scifact")
    queries, qrels = coll.queries("train"), coll.qrels("train")
    _, val = split_queries(list(queries.qids), args.validation, seed=args.seed)
    bm25 = first_stage("scifact", "train", "bm25", 100, args.out).restrict(val).with_queries(queries)
    runs = {"bm25": bm25.renamed("bm25")}
    for ml in args.lengths:
        derived, st = _rerank_all(args.model, coll, bm25, args.depth, args.threads, f"val-{ml}", args.out,
                                  max_length=ml)
        for label in ("alone", "interp-zscore"):
            runs[f"bm25>>ce {label} len {ml}"] = derived[label]
    cmp = compare(runs, qrels.restrict(val), ["nDCG@10"], baseline="bm25")
    print(f"{len(val)} held-out scifact training queries, depth {args.depth}")
    print(cmp.to_text())


def cmd_cost(args) -> None:
    """nDCG@10 cost of the fast paths: BM25 top `depth` of every scifact test query reranked (alone)
    in fp32, bf16 autocast and bf16 weights (pair scores cached per precision); paired tests vs fp32."""
    coll = Collection(args.collection)
    qrels = coll.qrels("test")
    bm25 = first_stage(args.collection, "test", "bm25", 100, args.out).renamed("bm25")
    if args.queries:  # a seeded subset of the test queries (the machine was too loaded for all 300)
        rng = np.random.default_rng(0)
        bm25 = bm25.restrict(rng.permutation(sorted(bm25.query_ids))[: args.queries].tolist())
    if args.score_only:  # fill one path's score cache (run paths in parallel processes), no comparison
        _rerank_all(args.model, coll, bm25, args.depth, args.threads, f"bm25-{args.score_only}", args.out,
                    precision=args.score_only)
        return
    runs, stats = {}, {}
    for precision in dict.fromkeys(["fp32", *args.paths]):
        derived, st = _rerank_all(args.model, coll, bm25, args.depth, args.threads, f"bm25-{precision}", args.out,
                                  precision=precision)
        runs[f"bm25>>ce {precision}"] = derived["alone"]
        stats[precision] = st
    cmp = compare(runs, qrels, ["nDCG@10"], baseline="bm25>>ce fp32")
    print(f"{len(bm25.query_ids)} {args.collection} test queries, BM25 top {args.depth} reranked (CE alone)")
    print(cmp.to_text())
    from scipy.stats import spearmanr

    def pair_scores(r):
        return dict(zip(zip(r.qids.tolist(), r.docids.tolist()), r.scores.tolist()))

    ref = pair_scores(runs["bm25>>ce fp32"])
    top = bm25.top_k(args.depth)  # only the reranked pairs (the tail keeps first-stage ranks in every run)
    keys = list(zip(top.qids.tolist(), top.docids.tolist()))
    for name, r in runs.items():
        mine = pair_scores(r)
        a, b = np.array([mine[k] for k in keys]), np.array([ref[k] for k in keys])
        print(f"{name}: over {len(keys)} pairs, Pearson {np.corrcoef(a, b)[0, 1]:.5f}, "
              f"Spearman {spearmanr(a, b)[0]:.5f} with fp32; pairs/s {stats[name.split()[-1]].get('pairs_per_s', 0):.1f}")
    (args.out / f"cost-{args.collection}-{args.depth}.json").write_text(json.dumps({"stats": stats, "comparison": cmp.to_dict()},
                                                                 indent=1, default=str))


def cmd_speed(args) -> None:
    """Pairs/s of rankstack's paths vs sentence_transformers.CrossEncoder.predict, same weights and max
    length, in one process. Paths run interleaved for `--rounds` rounds (the machine is shared and
    noisy); the table reports medians and the ratio of medians against CrossEncoder.predict fp32."""
    import statistics

    import torch
    from sentence_transformers import CrossEncoder

    if args.threads:
        torch.set_num_threads(args.threads)
    coll = Collection("scifact")
    qrels = coll.qrels("test")
    bm25 = first_stage("scifact", "test", "bm25", 100, args.out)
    sub = bm25.restrict(bm25.query_ids[: args.queries]).top_k(args.depth)
    q = [sub.queries[x] for x in sub.qids]
    d = coll.doc_texts(sub.docids)
    ml = args.max_length or _reranker(args.model, coll).max_length
    ce = CrossEncoder(fresh_head_model() if args.model == "minilm" else args.model, device="cpu", max_length=ml)
    identity = torch.nn.Identity()

    def predict(bf16: bool):
        def run():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return ce.predict(list(zip(q, d)), batch_size=32, activation_fn=identity)
        return run

    paths = {}
    for precision in args.paths:
        for bs in args.batch_sizes:
            rr = _reranker(args.model, coll, max_length=ml, precision=precision, batch_size=bs, threads=args.threads)
            if rr.precision_used != precision:
                print(f"skipping {precision}: resolved to {rr.precision_used} on this CPU")
                break
            paths[f"rankstack {precision} (batch {bs})"] = (lambda rr=rr: rr.score(q, d))
            if args.compile and precision in ("fp32", "bf16", "bf16-weights"):
                rc = _reranker(args.model, coll, max_length=ml, precision=precision, batch_size=bs,
                               threads=args.threads, compile=True)
                t = time.perf_counter()
                rc.score(q, d)  # compiles each (rows, length) bucket once (not timed: reported)
                print(f"compiling {precision} batch {bs}: {time.perf_counter() - t:.1f} s", flush=True)
                paths[f"rankstack {precision} + compile (batch {bs})"] = (lambda rc=rc: rc.score(q, d))
    paths["CrossEncoder.predict fp32 (batch 32)"] = predict(False)
    if "bf16" in args.paths:
        paths["CrossEncoder.predict bf16 autocast (batch 32)"] = predict(True)
    times: dict[str, list[float]] = {k: [] for k in paths}
    scores: dict[str, np.ndarray] = {}
    for rnd in range(args.rounds):
        for label, fn in paths.items():
            t = time.perf_counter()
            out = fn()
            times[label].append(time.perf_counter() - t)
            scores[label] = np.asarray(out, dtype=np.float64)
            print(f"round {rnd + 1} {label:46s} {len(q) / times[label][-1]:7.1f} pairs/s", flush=True)
    from scipy.stats import spearmanr

    ref_label = "CrossEncoder.predict fp32 (batch 32)"
    base = len(q) / statistics.median(times["CrossEncoder.predict fp32 (batch 32)"])
    res = {}
    for label in paths:
        run = sub.replace(scores=scores[label], name=label)
        pps = len(q) / statistics.median(times[label])
        res[label] = {"pairs": len(q), "seconds": times[label], "pairs_per_s_median": pps,
                      "x_crossencoder_fp32": pps / base,
                      # the ratio within each round, where both ran minutes apart at most: robust to drift
                      "x_per_round_median": statistics.median(
                          a / b for a, b in zip(times[ref_label], times[label])),
                      "nDCG@10": evaluate(run, qrels, "nDCG@10").mean["nDCG@10"],
                      "corr_with_fp32": float(np.corrcoef(scores[label], scores[ref_label])[0, 1]),
                      "spearman_with_fp32": float(spearmanr(scores[label], scores[ref_label])[0])}
    print(f"\n{len(q)} pairs (BM25 top {args.depth} of {args.queries} scifact test queries), max length {ml}, "
          f"{args.threads or torch.get_num_threads()} threads, median of {args.rounds} interleaved rounds")
    print(f"| path | pairs/s | x CrossEncoder.predict fp32 | median of per-round ratios | nDCG@10 (these "
          f"{args.queries} queries) | Pearson / Spearman with CrossEncoder.predict fp32 |")
    print("|---|---|---|---|---|---|")
    for label, r in res.items():
        print(f"| {label} | {r['pairs_per_s_median']:.1f} | {r['x_crossencoder_fp32']:.2f} | "
              f"{r['x_per_round_median']:.2f} | {r['nDCG@10']:.4f} | "
              f"{r['corr_with_fp32']:.5f} / {r['spearman_with_fp32']:.5f} |")
    (args.out / f"speed-{ml}.json").write_text(json.dumps({"max_length": ml, "threads": torch.get_num_threads(),
                                                          "rounds": args.rounds, "results": res}, indent=1))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=OUT)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("prepare")
    for name in ("effectiveness", "fuse3", "zeroshot", "speed", "cost", "validation"):
        s = sub.add_parser(name)
        s.add_argument("--model", required=True)
        s.add_argument("--depth", type=int, default=20 if name in ("speed", "cost") else 100)
        s.add_argument("--threads", type=int, default=None)
        if name == "zeroshot":
            s.add_argument("--collections", nargs="+", default=list(ZERO_SHOT))
        if name == "validation":
            s.add_argument("--lengths", type=int, nargs="+", default=[192, 256])
            s.add_argument("--validation", type=int, default=60)
            s.add_argument("--seed", type=int, default=0)
        if name == "speed":
            s.add_argument("--queries", type=int, default=30)
            s.add_argument("--rounds", type=int, default=3)
            s.add_argument("--max-length", type=int, default=None, help="default: the model's")
            s.add_argument("--paths", nargs="+", default=["fp32", "bf16", "bf16-weights", "torch-int8", "onnx-fp32",
                                                          "onnx-int8"], help="rankstack inference paths to time")
            s.add_argument("--batch-sizes", type=int, nargs="+", default=[16])
            s.add_argument("--compile", action="store_true", help="also time each torch path with compile=True")
        if name == "cost":
            s.add_argument("--paths", nargs="+", default=["fp32", "bf16", "bf16-weights"],
                           help="inference paths whose nDCG@10 is compared with fp32's")
            s.add_argument("--queries", type=int, default=0, help="seeded subset of test queries (0: all 300)")
            s.add_argument("--score-only", default=None, help="only fill this path's pair-score cache")
            s.add_argument("--collection", default="scifact")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("bm25s", "sentence_transformers", "transformers", "faiss"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    {"prepare": cmd_prepare, "effectiveness": cmd_effectiveness, "fuse3": cmd_fuse3, "zeroshot": cmd_zeroshot,
     "speed": cmd_speed, "cost": cmd_cost, "validation": cmd_validation}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
