"""BM25 quality and speed on every shared BEIR collection: rankstack vs bm25s used directly.

Question: does rankstack's BM25 stage cost anything over bm25s itself, and how close is it to
Pyserini's published-style figures? Both sides index the same title+text with the same stemmer and
stopwords; queries/s is measured for the full path (tokenise + retrieve top-1000; rankstack also
builds its canonical Run). Medians over --repeats runs, ratio from the same run.

    python benchmarks/bench_bm25.py --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

PYSERINI = {"scifact": 0.679, "cranfield": 0.351, "cisi": 0.364, "msmarco_dl19_subset": 0.732}


def bm25s_direct(docs, queries, k, variant):
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer(variant["stemmer"]) if variant["stemmer"] else None
    t0 = time.perf_counter()
    corpus_tokens = bm25s.tokenize([d.contents for d in docs], stopwords=variant["stopwords"],
                                   stemmer=stemmer, show_progress=False)
    model = bm25s.BM25(k1=variant["k1"], b=variant["b"], method="lucene")
    model.index(corpus_tokens, show_progress=False)
    t_index = time.perf_counter() - t0
    t0 = time.perf_counter()
    q_tokens = bm25s.tokenize(list(queries.texts), stopwords=variant["stopwords"], stemmer=stemmer,
                              show_progress=False)
    idx, scores = model.retrieve(q_tokens, k=min(k, len(docs)), show_progress=False, n_threads=2)
    t_query = time.perf_counter() - t0
    docids = np.array([d.docid for d in docs])
    run = {q: {str(docids[i]): float(s) for i, s in zip(idx[r], scores[r]) if s > 0}
           for r, q in enumerate(queries.qids)}
    return run, t_index, t_query


def main() -> None:
    from rankstack.data.beir import Collection
    from rankstack.evaluate import evaluate
    from rankstack.retrieve.bm25 import BM25Retriever
    from rankstack.types import Run

    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--collections", nargs="+", default=list(PYSERINI))
    ap.add_argument("--k", type=int, default=1000)
    args = ap.parse_args()
    variant = {"k1": 0.9, "b": 0.4, "stemmer": "english", "stopwords": "en"}
    print("| collection | rankstack nDCG@10 | AP | R@100 | bm25s nDCG@10 | Pyserini nDCG@10 | index s "
          "(rankstack / bm25s) | queries/s rankstack | queries/s bm25s | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.collections:
        coll = Collection(name)
        queries, qrels = coll.queries("test"), coll.qrels("test")
        docs = list(coll.corpus())
        ti_rs, tq_rs, ti_bs, tq_bs = [], [], [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            retriever = BM25Retriever(k=args.k, threads=2).index(docs)
            ti_rs.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            run = retriever(queries)
            tq_rs.append(time.perf_counter() - t0)
            direct, ti, tq = bm25s_direct(docs, queries, args.k, variant)
            ti_bs.append(ti)
            tq_bs.append(tq)
        ev = evaluate(run, qrels, ["nDCG@10", "AP", "R@100"])
        ev_direct = evaluate(Run.from_dict(direct), qrels, ["nDCG@10"])
        qps_rs = len(queries) / statistics.median(tq_rs)
        qps_bs = len(queries) / statistics.median(tq_bs)
        print(f"| {name} | {ev.mean['nDCG@10']:.4f} | {ev.mean['AP']:.4f} | {ev.mean['R@100']:.4f} | "
              f"{ev_direct.mean['nDCG@10']:.4f} | {PYSERINI[name]:.3f} | "
              f"{statistics.median(ti_rs):.2f} / {statistics.median(ti_bs):.2f} | {qps_rs:,.0f} | "
              f"{qps_bs:,.0f} | {qps_rs / qps_bs:.2f} |")


if __name__ == "__main__":
    main()
