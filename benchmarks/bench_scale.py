"""Scale benchmark: BM25 and FAISS IVF-PQ at 100k / 300k / 1M passages, encoding and reranking local vs Ray.

Every stage runs in its own subprocess so its peak memory (``ru_maxrss``) is that stage's alone.

    .venv/bin/python benchmarks/bench_scale.py synth --docs 100000 300000 1000000 --root /tmp/scale
    .venv/bin/python benchmarks/bench_scale.py bm25 --root /tmp/scale --docs 100000 300000 --modes stream whole
    .venv/bin/python benchmarks/bench_scale.py faiss --docs 100000 300000 1000000
    .venv/bin/python benchmarks/bench_scale.py encode --sample 512        # msmarco_dl19_subset passages
    .venv/bin/python benchmarks/bench_scale.py rerank --pairs 240          # ce-scifact-v2, fp32
    .venv/bin/python benchmarks/bench_scale.py table                       # markdown from results JSONL

Results are appended to ``--results`` (default benchmarks/scale_results.jsonl), one JSON per measurement.
What is measured (see benchmarks/scale.md): BM25 index time, peak RSS, index size and queries/s over the
synthetic collection's 1,000 queries (k=100, 2 threads); FAISS IVF1024,PQ48x8 over random unit
384-d vectors (MiniLM's dimension; random vectors make no claim about recall, only time and memory),
trained on 64k vectors then filled in chunks of 50k; MiniLM encoding docs/s local (2 torch threads) vs
Ray (2 actors x 1 thread) on a fixed sample of real MS MARCO passages; cross-encoder pairs/s local
vs Ray on fixed pairs. Ray figures include the actor pool's start-up (model load) and, separately,
the cluster's start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS = ROOT / "benchmarks" / "scale_results.jsonl"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _emit(args: argparse.Namespace, record: dict) -> None:
    record = {"stage": args.cmd, "peak_rss_mb": round(_peak_mb(), 1), "date": time.strftime("%Y-%m-%d %H:%M"),
              **record}
    print(json.dumps(record), flush=True)
    with open(args.results, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def _sub(argv: list[str]) -> None:
    """Run one measurement in a fresh interpreter (its own peak RSS)."""
    subprocess.run([sys.executable, __file__, *argv], check=True)


# --- stages ---------------------------------------------------------------------------------------
def stage_synth(args: argparse.Namespace) -> None:
    from rankstack.data.synthetic import SyntheticConfig, write_synthetic_collection

    for n in args.docs:
        out = Path(args.root) / f"syn{n}"
        if (out / "manifest.json").is_file():
            continue
        start = time.perf_counter()
        write_synthetic_collection(SyntheticConfig(docs=n, queries=1000, seed=0), out, overwrite=True)
        _emit(args, {"docs": n, "seconds": round(time.perf_counter() - start, 1),
                     "corpus_mb": round((out / "corpus.jsonl").stat().st_size / 2**20, 1)})


def stage_bm25(args: argparse.Namespace) -> None:
    if args.one is None:
        for n in args.docs:
            for mode in args.modes:
                _sub(["bm25", "--root", args.root, "--results", str(args.results), "--one", str(n), "--mode", mode])
        return
    from rankstack.data.beir import Collection
    from rankstack.retrieve.bm25 import BM25Retriever

    coll = Collection(Path(args.root) / f"syn{args.one}")
    start = time.perf_counter()
    bm25 = BM25Retriever.from_collection(coll, chunk_size=50_000 if args.mode == "stream" else None, k=100,
                                         threads=2)
    index_s = time.perf_counter() - start
    index_peak = _peak_mb()
    queries = coll.queries("test")
    start = time.perf_counter()
    run = bm25(queries)
    search_s = time.perf_counter() - start
    from rankstack.evaluate import evaluate

    mrr = evaluate(run, coll.qrels("test"), ["RR@10"]).mean["RR@10"]
    out = Path(args.root) / f"bm25-{args.one}"
    bm25.save(out, overwrite=True)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    _emit(args, {"docs": args.one, "mode": args.mode, "index_s": round(index_s, 1),
                 "index_peak_rss_mb": round(index_peak, 1), "queries": len(queries),
                 "queries_per_s": round(len(queries) / search_s, 1), "index_disk_mb": round(size / 2**20, 1),
                 "vocab": len(bm25._model.vocab_dict), "RR@10": round(mrr, 4)})


def stage_faiss(args: argparse.Namespace) -> None:
    if args.one is None:
        for n in args.docs:
            _sub(["faiss", "--results", str(args.results), "--one", str(n)])
        return
    import numpy as np

    from rankstack.retrieve.dense import DenseIndex

    n, dim, chunk = args.one, 384, 50_000

    def chunks():
        for s in range(0, n, chunk):
            rng = np.random.default_rng([0, s])
            v = rng.standard_normal((min(chunk, n - s), dim), dtype=np.float32)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            yield v, [f"d{i}" for i in range(s, s + len(v))]

    start = time.perf_counter()
    idx = DenseIndex.build_streaming(chunks(), n, "random-384", index="ivfpq", m=48, nbits=8, nlist=1024,
                                     nprobe=32, train_size=65_536, threads=2)
    build_s = time.perf_counter() - start
    build_peak = _peak_mb()
    q = np.random.default_rng(1).standard_normal((1000, dim), dtype=np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    start = time.perf_counter()
    idx.search(q, 100)
    search_s = time.perf_counter() - start
    _emit(args, {"docs": n, "index": "IVF1024,PQ48x8 nprobe 32", "build_s": round(build_s, 1),
                 "build_peak_rss_mb": round(build_peak, 1), "index_mb": round(idx.nbytes() / 2**20, 1),
                 "queries_per_s": round(1000 / search_s, 1)})


def _msmarco_passages(n: int) -> tuple[list[str], list[str]]:
    from rankstack.data.beir import Collection

    docs = list(Collection("msmarco_dl19_subset").corpus())[:n]
    return [d.contents for d in docs], [d.docid for d in docs]


def stage_encode(args: argparse.Namespace) -> None:
    if args.one is None:
        for mode in ("local", "ray"):
            _sub(["encode", "--results", str(args.results), "--one", str(args.sample), "--mode", mode])
        return
    import numpy as np

    from rankstack.engine import ExecutionOptions, get_executor

    texts, ids = _msmarco_passages(args.one)
    start = time.perf_counter()
    ex = get_executor(ExecutionOptions(execution=args.mode, workers=2, progress=False))
    cluster_s = time.perf_counter() - start
    opts = {"precision": "fp32"} if args.mode == "ray" else {"precision": "fp32", "threads": 2}
    start = time.perf_counter()
    vecs = ex.encode("minilm", texts, ids, batch_size=32, options=opts)
    took = time.perf_counter() - start
    ex.close()
    np.save(Path(args.root) / f"enc-{args.mode}.npy", vecs)
    _emit(args, {"mode": args.mode, "passages": len(texts), "seconds": round(took, 1),
                 "cluster_start_s": round(cluster_s, 1), "docs_per_s": round(len(texts) / took, 2)})


def stage_rerank(args: argparse.Namespace) -> None:
    if args.one is None:
        for mode in ("local", "ray"):
            _sub(["rerank", "--results", str(args.results), "--one", str(args.pairs), "--mode", mode])
        return
    import numpy as np

    from rankstack.data.beir import Collection
    from rankstack.engine import ExecutionOptions, attach_pair_executor, get_executor
    from rankstack.engine.pairs import reranker_spec
    from rankstack.rerank.cross_encoder import CrossEncoderReranker
    from rankstack.retrieve.bm25 import BM25Retriever

    coll = Collection("msmarco_dl19_subset")
    queries = coll.queries("test")
    run = (BM25Retriever.from_collection(coll) % 20)(queries)
    pairs_q = [queries[q] for q in run.qids.tolist()][: args.one]
    pairs_d = coll.doc_texts(run.docids.tolist()[: args.one])
    model = str(ROOT / ".cache" / "models" / "ce-scifact-v2")
    ce = CrossEncoderReranker(model, batch_size=16, precision="fp32", threads=2 if args.mode == "local" else 1)
    start = time.perf_counter()
    ex = get_executor(ExecutionOptions(execution=args.mode, workers=2, progress=False))
    cluster_s = time.perf_counter() - start
    if args.mode == "ray":
        attach_pair_executor(ce, reranker_spec(model, max_length=ce.max_length, batch_size=16, precision="fp32"), ex)
    start = time.perf_counter()
    scores = ce.score(pairs_q, pairs_d)
    took = time.perf_counter() - start
    ex.close()
    np.save(Path(args.root) / f"rerank-{args.mode}.npy", scores)
    _emit(args, {"mode": args.mode, "pairs": len(pairs_q), "seconds": round(took, 1),
                 "cluster_start_s": round(cluster_s, 1), "pairs_per_s": round(len(pairs_q) / took, 2)})


def stage_table(args: argparse.Namespace) -> None:
    rows = [json.loads(line) for line in open(args.results, encoding="utf-8") if line.strip()]
    for stage in ("synth", "bm25", "faiss", "encode", "rerank"):
        sel = [r for r in rows if r["stage"] == stage]
        if not sel:
            continue
        keys = [k for k in sel[-1] if k not in ("stage",)]
        print(f"\n### {stage}\n\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
        for r in sel:
            print("| " + " | ".join(str(r.get(k, "")) for k in keys) + " |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cmd", choices=["synth", "bm25", "faiss", "encode", "rerank", "table"])
    p.add_argument("--docs", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    p.add_argument("--modes", nargs="+", default=["stream"], choices=["stream", "whole"])
    p.add_argument("--root", default="/tmp/scale")
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    p.add_argument("--sample", type=int, default=512)
    p.add_argument("--pairs", type=int, default=240)
    p.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--mode", default="stream", help=argparse.SUPPRESS)
    args = p.parse_args()
    os.environ.setdefault("RANKSTACK_DATA", str(ROOT.parent / "shared" / "data"))
    Path(args.root).mkdir(parents=True, exist_ok=True)
    {"synth": stage_synth, "bm25": stage_bm25, "faiss": stage_faiss, "encode": stage_encode,
     "rerank": stage_rerank, "table": stage_table}[args.cmd](args)


if __name__ == "__main__":
    main()
