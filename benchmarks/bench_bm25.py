"""BM25 quality against Pyserini and speed against raw bm25s, on every shared BEIR collection.

Questions: (1) does the Lucene analyzer (Anserini's DefaultEnglishAnalyzer, with and without Lucene's
one-byte length norms) reach Pyserini's nDCG@10, and how does the former default (bm25s tokenizer,
Snowball English, bm25s stopwords) compare? (2) what does rankstack's BM25 stage (query texts ->
tokenise -> bm25s retrieve -> canonical Run) cost against bm25s's ``retrieve`` alone on the same
already-tokenised queries? Quality: test split, k1 0.9, b 0.4, title + text, top-1000. Speed: medians
of --repeats interleaved rounds (the two sides alternate within a round), ratio from the same run.

    python benchmarks/bench_bm25.py --repeats 7
    python benchmarks/bench_bm25.py --anserini-runs DIR   # also evaluate Anserini's own run files
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

# Anserini 1.7.1 (Pyserini 1.6.0's jar), BM25 k1 0.9 b 0.4 over BeirFlatCollection, run here (bm25.md)
PYSERINI = {"scifact": 0.6789, "cranfield": 0.3506, "cisi": 0.3635, "msmarco_dl19_subset": 0.7320}
VARIANTS = {
    "former default (bm25s)": {"tokenizer": "regex", "stopwords": "en", "stemmer": "english", "norms": "exact"},
    "lucene, exact norms": {"tokenizer": "lucene", "stopwords": "lucene", "stemmer": "lucene-porter",
                            "norms": "exact"},
    "lucene + one-byte norms (default)": {},
}


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def speed(retriever, queries, repeats: int, threads: int) -> tuple[float, float]:
    """(rankstack stage q/s, raw bm25s retrieve q/s): medians of interleaved rounds."""
    vocab = retriever._model.vocab_dict
    tokens = [[t for t in toks if t in vocab] for toks in retriever.tokenize(queries.texts)]
    tokens = [t for t in tokens if t]
    k = min(retriever.k, retriever.num_docs)

    def raw():
        retriever._model.retrieve(tokens, k=k, show_progress=False, n_threads=threads if threads > 1 else 0)

    def stage():
        retriever(queries)

    stage(), raw()  # warm-up (stemmer cache, lazy imports)
    t_stage, t_raw = [], []
    for i in range(repeats):
        for name in (("raw", "stage") if i % 2 else ("stage", "raw")):
            t0 = time.perf_counter()
            raw() if name == "raw" else stage()
            (t_raw if name == "raw" else t_stage).append(time.perf_counter() - t0)
    return len(queries) / statistics.median(t_stage), len(tokens) / statistics.median(t_raw)


def main() -> None:
    from rankstack.data.beir import Collection
    from rankstack.data.trec import read_run
    from rankstack.evaluate import evaluate
    from rankstack.retrieve.bm25 import BM25Retriever

    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--collections", nargs="+", default=list(PYSERINI))
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1, help="bm25s threads on both sides (1: no pool)")
    ap.add_argument("--anserini-runs", type=Path, help="folder with run.<collection>.txt from Anserini")
    args = ap.parse_args()
    print(f"CPU: {cpu_model()}; load average at start: {os.getloadavg()[0]:.1f}; threads {args.threads}; "
          f"{args.repeats} rounds\n")
    quality, speeds = [], []
    for name in args.collections:
        coll = Collection(name)
        queries, qrels = coll.queries("test"), coll.qrels("test")
        docs = list(coll.corpus())
        row = [name]
        for label, params in VARIANTS.items():
            t0 = time.perf_counter()
            retriever = BM25Retriever(k=args.k, threads=args.threads, **params).index(docs)
            t_index = time.perf_counter() - t0
            ndcg = evaluate(retriever(queries), qrels, ["nDCG@10"]).mean["nDCG@10"]
            row.append(f"{ndcg:.4f}")
            if label != "lucene, exact norms":
                qps_stage, qps_raw = speed(retriever, queries, args.repeats, args.threads)
                speeds.append(f"| {name} | {label} | {t_index:.2f} | {qps_stage:,.0f} | {qps_raw:,.0f} | "
                              f"{qps_stage / qps_raw:.2f} |")
        row.append(f"{PYSERINI[name]:.4f}")
        if args.anserini_runs:
            run = read_run(args.anserini_runs / f"run.{name}.txt")
            row.append(f"{evaluate(run, qrels, ['nDCG@10']).mean['nDCG@10']:.4f}")
        quality.append("| " + " | ".join(row) + " |")
    head = " | ".join(VARIANTS) + " | Pyserini (Anserini 1.7.1)" + (" | Anserini run, re-evaluated"
                                                                  if args.anserini_runs else "")
    print(f"nDCG@10, test split\n\n| collection | {head} |\n|" + "---|" * (len(VARIANTS) + 2 +
                                                                         bool(args.anserini_runs)))
    print("\n".join(quality))
    print("\nqueries/s: rankstack stage (texts -> Run) vs bm25s retrieve on the same tokenised queries\n")
    print("| collection | analyzer | index s | rankstack q/s | bm25s retrieve q/s | ratio |\n|---|---|---|---|---|---|")
    print("\n".join(speeds))
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
