"""bf16 autocast against fp32 for the LLM backend (SmolLM2-135M-Instruct), per primitive, on this CPU.

What ``precision="auto"`` buys where the CPU has native bf16 (AMX or AVX-512 BF16), and what it changes:

* generation: the ``llm-instruct`` query generator (greedy, batched) on ``--docs`` documents of a collection:
  documents/s, queries kept, and how many generated queries are word-for-word the fp32 ones;
* query likelihood (UPR, ``continuation_logprobs``) and yes/no log-odds (``next_token_logprobs``) on BM25's
  top ``--depth`` for the first ``--queries`` test queries: pairs/s and the Pearson correlation with fp32.

Both backends share one model in memory; the variants alternate within each of ``--rounds`` rounds (the same
machine load for both) and medians are reported. No answer cache. On a CPU without native bf16 the script says
so and measures fp32 only (``RANKSTACK_BF16=1`` forces the emulated bf16 path, to show that it is slower).

    python benchmarks/bench_llm_precision.py --collection cranfield --docs 24 --queries 2 --depth 20 --rounds 3 \
        --threads 2 --json benchmarks/llm_precision_results.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from rankstack.data.beir import Collection
from rankstack.hardware import bf16_support
from rankstack.llm.models import load_backend
from rankstack.llm.transformers_backend import TransformersBackend
from rankstack.rerank.llm import PointwiseLLMReranker, QueryLikelihoodReranker
from rankstack.synth.generators import build_generator
from rankstack.synth.selection import select_uniform

sys.path.insert(0, str(Path(__file__).parent))
from bench_llm_quant import bm25_pairs  # noqa: E402
from bench_train_step import cpu_name  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--collection", default="cranfield")
    ap.add_argument("--docs", type=int, default=24, help="documents to generate a query for")
    ap.add_argument("--queries", type=int, default=2, help="test queries whose BM25 top --depth is scored")
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--json")
    args = ap.parse_args()

    coll = Collection(args.collection)
    corpus = [d for d in coll.corpus() if d.contents.strip()]
    docs = [corpus[i] for i in select_uniform(len(corpus), args.docs, seed=0).indices]
    q_texts, d_texts = bm25_pairs(coll, args.queries, args.depth)  # the pairs bench_llm_quant.py scores
    cpu = cpu_name()
    native, why = bf16_support()
    print(f"CPU {cpu}; native bf16: {native} ({why}); {len(docs)} documents, {len(q_texts)} pairs", flush=True)

    fp32 = load_backend("smollm2", cache=False, threads=args.threads, batch_size=args.batch_size, precision="fp32")
    backends = {"fp32": fp32}
    if native:
        backends["bf16"] = TransformersBackend(fp32.model, fp32.tokenizer, fp32.name, threads=args.threads,
                                               batch_size=args.batch_size, precision="bf16")
    tasks = {
        "generate": lambda b: [g.text if g.rejected is None else None
                               for g in build_generator("llm-instruct", backend=b).generate(docs, seed=0)],
        "query_likelihood": lambda b: QueryLikelihoodReranker(b, batch_size=args.batch_size).score(q_texts, d_texts),
        "yes_no": lambda b: PointwiseLLMReranker(b, batch_size=args.batch_size).score(q_texts, d_texts),
    }
    seconds = {(t, p): [] for t in tasks for p in backends}
    outputs: dict = {}
    for _ in range(args.rounds):
        for task, fn in tasks.items():
            for prec, backend in backends.items():  # interleaved: a load change hits both alike
                start = time.perf_counter()
                outputs[task, prec] = fn(backend)
                seconds[task, prec].append(time.perf_counter() - start)
    rows = []
    for task in tasks:
        base = statistics.median(seconds[task, "fp32"])
        n = len(docs) if task == "generate" else len(q_texts)
        for prec in backends:
            med = statistics.median(seconds[task, prec])
            row = {"task": task, "precision": prec, "items": n, "items_per_s": round(n / med, 3),
                   "speedup_vs_fp32": round(base / med, 3), "seconds": [round(s, 2) for s in seconds[task, prec]]}
            ref, out = outputs[task, "fp32"], outputs[task, prec]
            if task == "generate":
                row["kept"] = sum(t is not None for t in out)
                row["same_text_as_fp32"] = sum(a == b for a, b in zip(ref, out))
                row["examples"] = [[a, b] for a, b in zip(ref, out) if a != b][:3]
            else:
                row["pearson_vs_fp32"] = round(float(np.corrcoef(ref, out)[0, 1]), 6)
                row["max_abs_diff"] = round(float(np.max(np.abs(np.asarray(ref) - np.asarray(out)))), 5)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "examples"}), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu, "native_bf16": native, "why": why, "args": vars(args), "rows": rows},
                      f, indent=1)


if __name__ == "__main__":
    main()
