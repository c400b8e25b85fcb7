"""Is dynamic int8 (or bf16) a usable speed path for the LLM backend? SmolLM2-135M query likelihood (UPR) in fp32
against torch dynamic int8 of its linear layers (per-tensor; per-channel; per-channel with the LM head kept fp32)
and, where the CPU has native bf16 (``rankstack.hardware.bf16_support``), bf16 autocast.

Pairs: the first ``--queries`` test queries of a collection, BM25's top ``--depth`` each. Per variant: pairs/s
(median of ``--rounds`` interleaved rounds, one process, no answer cache) and the Pearson correlation of its scores
with fp32's; a path is usable when it correlates >= 0.999 (the bar ``rankstack rerank --precision auto`` sets for
cross-encoders).

    python benchmarks/bench_llm_quant.py --collection cranfield --queries 4 --depth 20 --rounds 3 --threads 2
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from rankstack.data.beir import Collection
from rankstack.llm.models import load_backend
from rankstack.llm.transformers_backend import TransformersBackend
from rankstack.rerank.llm import QueryLikelihoodReranker
from rankstack.retrieve.bm25 import BM25Retriever

sys.path.insert(0, str(Path(__file__).parent))
from bench_train_step import cpu_name  # noqa: E402


def bm25_pairs(coll: Collection, n_queries: int, depth: int) -> tuple[list[str], list[str]]:
    """(query, passage) texts: BM25's top ``depth`` for the ``n_queries`` judged test queries with the shortest ids."""
    queries, judged = coll.queries("test"), set(coll.qrels("test").query_ids)
    qids = sorted((q for q in queries.qids if q in judged), key=lambda q: (len(q), q))[:n_queries]
    run = (BM25Retriever.from_collection(coll) % depth)(queries.subset(qids))
    docs = coll.documents()
    return [queries[str(q)] for q in run.qids], [docs[str(d)].contents for d in run.docids]


def quantised(model, per_channel: bool, keep_head: bool):
    import torch
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

    qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    out = copy.deepcopy(model)
    if keep_head:
        out.model.layers = quantize_dynamic(out.model.layers, {torch.nn.Linear: qconfig}, dtype=torch.qint8)
        return out
    return quantize_dynamic(out, {torch.nn.Linear: qconfig}, dtype=torch.qint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--collection", default="cranfield")
    ap.add_argument("--queries", type=int, default=4)
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args()

    q_texts, d_texts = bm25_pairs(Collection(args.collection), args.queries, args.depth)
    cpu = cpu_name()

    fp32 = load_backend("smollm2", cache=False, threads=args.threads, precision="fp32")
    variants = {"fp32": fp32}
    for name, per_channel, keep_head in (("int8 per-tensor", False, False), ("int8 per-channel", True, False),
                                         ("int8 per-channel, fp32 head", True, True)):
        variants[name] = TransformersBackend(quantised(fp32.model, per_channel, keep_head), fp32.tokenizer, name,
                                             threads=args.threads, precision="fp32")
    scorers = {n: QueryLikelihoodReranker(b, batch_size=8) for n, b in variants.items()}
    from rankstack.hardware import bf16_support

    bf16, why = bf16_support()
    print(f"CPU {cpu}; bf16: {bf16} ({why}); {len(q_texts)} pairs", flush=True)
    if bf16:  # the backend's own bf16 path (precision="bf16": autocast around every forward)
        scorers["bf16 autocast"] = QueryLikelihoodReranker(
            TransformersBackend(fp32.model, fp32.tokenizer, "bf16", threads=args.threads, precision="bf16"),
            batch_size=8)
    seconds: dict[str, list[float]] = {n: [] for n in scorers}
    scores: dict[str, np.ndarray] = {}
    for _ in range(args.rounds):  # interleaved: a load change hits every variant alike
        for name, scorer in scorers.items():
            start = time.perf_counter()
            scores[name] = scorer.score(q_texts, d_texts)
            seconds[name].append(time.perf_counter() - start)
    rows = []
    base = statistics.median(seconds["fp32"])
    for name in scorers:
        med = statistics.median(seconds[name])
        row = {"variant": name, "pairs": len(q_texts), "pairs_per_s": len(q_texts) / med, "speedup": base / med,
               "pearson_vs_fp32": float(np.corrcoef(scores["fp32"], scores[name])[0, 1])}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu, "args": vars(args), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
