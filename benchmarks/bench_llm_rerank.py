"""LLM rerankers on scifact test, BM25 top 20, SmolLM2-135M-Instruct (GGUF Q4_1 through transformers, fp32).

Per strategy: nDCG@10 on the query subset, prompt and generated tokens per query, LLM seconds per
query (the backend's own timing) and wall seconds per query; BM25's nDCG@10 on the same subset.
Then FIRST against generated listwise on the *same* windows (the BM25 top 20 in one context, so both
see identical prompts apart from the identifiers): median per-query latency ratio and Kendall tau of
their two rankings of the 20 documents. No answer cache (every figure is computed).

Queries: the first ``--queries`` test queries by numeric id (deterministic); the PRP variants (2 prompts
per comparison, one comparison per call for sorting/sliding) only on the first ``--prp-queries`` of
them and over the BM25 top 10. Strategies run interleaved, query by query, so that load changes on a
shared machine hit all alike; ``--only`` picks strategies (e.g. to split the work over processes).

    python benchmarks/bench_llm_rerank.py --queries 30 --prp-queries 5 --max-passage-tokens 40 --json out.json
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import time

import numpy as np

from rankstack.data.beir import Collection
from rankstack.evaluate import evaluate
from rankstack.llm.models import load_backend
from rankstack.rerank.llm import (ICRReranker, ListwiseReranker, PointwiseLLMReranker, PRPReranker,
                                  QueryLikelihoodReranker)
from rankstack.retrieve.bm25 import BM25Retriever
from rankstack.types import Run


def strategies(backend, docs, depth, mpt):
    common = {"documents": docs, "max_passage_tokens": mpt}
    return {
        "pointwise (yes/no)": PointwiseLLMReranker(backend, depth=depth, batch_size=10, **common),
        "query likelihood (UPR)": QueryLikelihoodReranker(backend, depth=depth, batch_size=10, **common),
        "PRP sorting (heap, top 3 of 10)": PRPReranker(backend, variant="sorting", k=3, depth=10, **common),
        "PRP sliding (1 pass over 10)": PRPReranker(backend, variant="sliding", k=1, depth=10, **common),
        "listwise generated (w10 s5)": ListwiseReranker(backend, mode="generate", window=10, stride=5,
                                                        depth=depth, **common),
        "FIRST (w10 s5)": ListwiseReranker(backend, mode="first", window=10, stride=5, depth=depth, **common),
        "full list generated (20 in 1 context)": ListwiseReranker(backend, mode="generate", window=None,
                                                                  depth=depth, **common),
        "full list FIRST (20 in 1 context)": ListwiseReranker(backend, mode="first", window=None, depth=depth,
                                                              **common),
        "ICR (attention, N/A-calibrated)": ICRReranker(backend, depth=depth, **common),
    }


def kendall_tau(a: list[str], b: list[str]) -> float:
    from scipy.stats import kendalltau

    pos = {d: i for i, d in enumerate(b)}
    return float(kendalltau(range(len(a)), [pos[d] for d in a]).statistic)


def per_query_seconds(run):
    return {q: v["seconds"] for q, v in run.metadata["llm"]["per_query"].items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--collection", default="scifact")
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--prp-queries", type=int, default=5, help="PRP variants run on the first N queries only")
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--max-passage-tokens", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", nargs="*", help="run only strategies whose name contains one of these words")
    ap.add_argument("--deadline", type=float, help="stop starting new queries after this many seconds")
    ap.add_argument("--json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    coll = Collection(args.collection)
    queries, qrels = coll.queries("test"), coll.qrels("test")
    judged = set(qrels.query_ids)
    qids = sorted((q for q in queries.qids if q in judged), key=lambda q: (len(q), q))[: args.queries]
    sub = queries.subset(qids)
    bm25 = BM25Retriever.from_collection(coll, k1=0.9, b=0.4)
    first_stage = (bm25 % args.depth)(sub)
    ndcg = lambda run, ids: evaluate(run.restrict(ids), qrels.restrict(ids), ["nDCG@10"]).mean["nDCG@10"]  # noqa
    cpu = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True).stdout.split(":")[-1]
    start = time.perf_counter()
    backend = load_backend("smollm2", cache=False, threads=args.threads, batch_size=10)
    load_s = time.perf_counter() - start
    print(f"CPU {cpu.strip()}; model {backend.name} loaded in {load_s:.1f} s; {len(qids)} queries")
    rows, runs = [], {}
    table = dict(strategies(backend, coll, args.depth, args.max_passage_tokens))
    table["PRP all pairs (top 10)"] = PRPReranker(backend, coll, variant="allpairs", depth=10,
                                                  max_passage_tokens=args.max_passage_tokens)
    table = {n: st for n, st in table.items() if not args.only or any(w.lower() in n.lower() for w in args.only)}
    few = {n for n in table if "PRP" in n}
    # interleaved: query by query, every strategy in turn, so that load changes on a shared machine hit
    # all strategies alike (the FIRST/generated latency ratio is paired per query)
    pieces: dict[str, list] = {n: [] for n in table}
    walls: dict[str, float] = {n: 0.0 for n in table}
    for k, q in enumerate(qids):
        if args.deadline and time.perf_counter() - start > args.deadline:
            print(f"deadline reached: stopping after {k} queries", flush=True)
            break
        for name, stage in table.items():
            if name in few and k >= args.prp_queries:
                continue
            t0 = time.perf_counter()
            pieces[name].append(stage(first_stage.restrict([q])))
            walls[name] += time.perf_counter() - t0
        print(f"query {k + 1}/{len(qids)} done", flush=True)
    for name, parts in pieces.items():
        if not parts:
            continue
        ids = [str(p.query_ids[0]) for p in parts]
        run = Run.concat(parts, name=name)
        per_query = {q: v for p in parts for q, v in p.metadata["llm"]["per_query"].items()}
        run = run.replace(metadata={"llm": {"per_query": per_query}})
        runs[name] = run
        tot = {key: sum(v[key] for v in per_query.values()) for key in ("prompt_tokens", "generated_tokens",
                                                                          "seconds", "calls")}
        row = {"strategy": name, "queries": len(ids), "nDCG@10": ndcg(run, ids), "bm25 nDCG@10": ndcg(first_stage, ids),
               "prompt_tokens_per_query": tot["prompt_tokens"] / len(ids),
               "generated_tokens_per_query": tot["generated_tokens"] / len(ids),
               "llm_seconds_per_query": tot["seconds"] / len(ids), "wall_seconds_per_query": walls[name] / len(ids),
               "calls_per_query": tot["calls"] / len(ids)}
        stage = table[name]
        if getattr(stage, "mode", None) == "generate":
            row["parser_repairs"] = dict(stage.repairs)
        rows.append(row)
        print(json.dumps(row), flush=True)

    result = {"cpu": cpu.strip(), "model": backend.name, "load_seconds": load_s, "queries": qids,
              "args": vars(args), "rows": rows}
    gen, first = "full list generated (20 in 1 context)", "full list FIRST (20 in 1 context)"
    if gen in runs and first in runs:
        sg, sf = per_query_seconds(runs[gen]), per_query_seconds(runs[first])
        ratios = [sg[q] / sf[q] for q in sg if sf.get(q)]
        taus = [kendall_tau([str(d) for d in runs[gen].for_query(q)[0]], [str(d) for d in runs[first].for_query(q)[0]])
                for q in sg]
        result["first_vs_generated"] = {"median_latency_ratio": statistics.median(ratios),
                                        "mean_latency_ratio": float(np.mean(ratios)),
                                        "median_seconds_generated": statistics.median(sg.values()),
                                        "median_seconds_first": statistics.median(sf.values()),
                                        "mean_kendall_tau": float(np.mean(taus)),
                                        "median_kendall_tau": statistics.median(taus)}
        print(json.dumps(result["first_vs_generated"]))
    gen, first = "listwise generated (w10 s5)", "FIRST (w10 s5)"
    if gen in runs and first in runs:
        sg, sf = per_query_seconds(runs[gen]), per_query_seconds(runs[first])
        result["first_vs_generated_sliding"] = {
            "median_latency_ratio": statistics.median(sg[q] / sf[q] for q in sg if sf.get(q)),
            "mean_kendall_tau": float(np.mean([kendall_tau([str(d) for d in runs[gen].for_query(q)[0]],
                                                           [str(d) for d in runs[first].for_query(q)[0]]) for q in sg]))}
        print(json.dumps(result["first_vs_generated_sliding"]))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
