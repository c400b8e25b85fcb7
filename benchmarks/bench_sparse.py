"""Learned sparse retrieval: splade-tiny (full and inference-free) against BM25 and MiniLM dense.

``zeroshot``: per collection, nDCG@10 (significance vs BM25: paired t-test †, randomization test ‡,
Holm-corrected, rankstack.evaluate.compare), index bytes, build seconds (SPLADE: expanding every
document; dense: FAISS only when the MiniLM embeddings are already cached, as said in the table),
queries/s (median of 3 timed passes over all queries, query encoding included) and the latency
ratio inference-free / BM25, all in one process.

``trained``: SPLADE models (e.g. trained with FLOPS and with IDF-aware FLOPS) against splade-tiny
zero-shot and BM25 on scifact test, reranking the BM25 top ``--depth`` of each query (every method
scores the same candidates, so only documents in those lists are expanded), with significance vs
BM25 and vs zero-shot, and sparsity (mean terms per document).

    python benchmarks/bench_sparse.py zeroshot --collections msmarco_dl19_subset cranfield cisi scifact \\
        --json benchmarks/sparse_zeroshot.json
    python benchmarks/bench_sparse.py trained --models flops=.cache/models/splade-if-flops \\
        idf-flops=.cache/models/splade-if-idf --depth 100
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from rankstack.data.beir import Collection
from rankstack.evaluate import compare
from rankstack.registry import Context, build
from rankstack.retrieve.bm25 import BM25Retriever
from rankstack.retrieve.sparse import SparseRetriever, build_index

MEASURES = ["nDCG@10"]


def _qps(stage, queries, rounds: int = 3):
    stage(queries.subset(queries.qids[:2]))  # warm-up
    times, run = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        run = stage(queries)
        times.append(time.perf_counter() - start)
    return run, len(queries) / statistics.median(times)


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _marks(cmp, name):
    s = cmp.stats["nDCG@10"][name]
    if name == cmp.baseline:
        return f"{s.mean:.4f}"
    return f"{s.mean:.4f}" + ("†" if s.t_p_holm < cmp.alpha else "") + ("‡" if s.perm_p_holm < cmp.alpha else "")


def _subsample(coll: Collection, split: str, max_docs: int, seed: int, out: Path) -> Collection:
    """A copy of ``coll`` with every document judged in ``split`` plus seeded random others (``max_docs`` in all)."""
    judged = {d for docs in coll.qrels(split).to_dict().values() for d in docs}
    docs = coll.documents()
    others = sorted(d for d in docs if d not in judged)
    rng = np.random.default_rng(seed)
    pick = judged | {others[i] for i in rng.choice(len(others), max(0, max_docs - len(judged)), replace=False)}
    (out / "qrels").mkdir(parents=True)
    with open(out / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for d in sorted(pick):
            fh.write(json.dumps({"_id": d, "title": docs[d].title, "text": docs[d].text}) + "\n")
    (out / "queries.jsonl").write_bytes((coll.path / "queries.jsonl").read_bytes())
    (out / "qrels" / f"{split}.tsv").write_bytes((coll.path / "qrels" / f"{split}.tsv").read_bytes())
    return Collection(out)


def _dense_subset(full_ctx: Context, coll: Collection, precision: str):
    """Dense over a subsampled corpus from the full corpus' cached embeddings (no re-encoding)."""
    from rankstack.retrieve.dense import DenseIndex, DenseRetriever

    full = build({"name": "dense", "args": {"precision": precision}}, context=full_ctx)
    ids = [d.docid for d in coll.corpus()]
    idx = DenseIndex.build(full.index.vectors_of(ids), ids, full.encoder.encoder_id)
    return DenseRetriever(full.encoder, idx)


def zeroshot(args) -> None:
    results = json.loads(args.json.read_text()) if args.json and args.json.is_file() else {}
    print("| collection | queries | method | nDCG@10 | index bytes | build s | queries/s | terms/doc |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for name in args.collections:
        coll = full = Collection(name)
        tmp = Path(tempfile.mkdtemp())
        label = name
        if args.max_docs and sum(1 for _ in coll.corpus()) > args.max_docs:
            coll = _subsample(full, args.split, args.max_docs, args.seed, tmp / "corpus")
            label = f"{name} ({sum(1 for _ in coll.corpus())}-doc subsample)"
        queries, qrels = coll.queries(args.split), coll.qrels(args.split)
        ctx = Context(collection=coll, cache_dir=args.cache_dir)
        rows, runs = {}, {}
        t = time.perf_counter()
        bm25 = BM25Retriever.from_collection(coll)
        build_s = time.perf_counter() - t
        bm25.save(tmp / "bm25")
        runs["bm25"], qps = _qps(bm25 % 1000, queries)
        rows["bm25"] = dict(bytes=_dir_bytes(tmp / "bm25"), build=build_s, qps=qps)
        if not args.no_dense:
            t = time.perf_counter()
            if coll is full:
                dense = build({"name": "dense", "args": {"precision": args.precision}}, context=ctx)
            else:
                dense = _dense_subset(Context(collection=full, cache_dir=args.cache_dir), coll, args.precision)
            build_s = time.perf_counter() - t
            dense.cache_dir = None  # time query encoding, not the query-embedding cache
            runs["dense"], qps = _qps(dense % 1000, queries)
            rows["dense"] = dict(bytes=dense.index.nbytes(), build=build_s, qps=qps, note="embeddings cached")
        from rankstack.encode.splade import SpladeEncoder

        enc = SpladeEncoder("splade-tiny", precision=args.precision, threads=args.threads or None)
        t = time.perf_counter()
        index = build_index(enc, coll, cache_dir=args.cache_dir)
        build_s = time.perf_counter() - t
        index.save(tmp / "splade")
        terms = float(index.terms_per_doc().mean())
        for method, mode in (("splade", "full"), ("splade_if", "idf")):
            stage = SparseRetriever(enc, index, mode=mode, threads=args.threads)
            runs[method], qps = _qps(stage % 1000, queries)
            rows[method] = dict(bytes=_dir_bytes(tmp / "splade"), build=build_s, qps=qps, terms=terms)
        cmp = compare(runs, qrels, MEASURES, baseline="bm25")
        ratio = rows["bm25"]["qps"] / rows["splade_if"]["qps"]
        entry = {"queries": len(cmp.queries), "latency_ratio_if_vs_bm25": ratio, "methods": {}}
        entry["corpus"] = label
        for method, r in rows.items():
            s = cmp.stats["nDCG@10"][method]
            entry["methods"][method] = {**r, "ndcg10": s.mean,
                                        "t_p_holm": None if method == "bm25" else s.t_p_holm,
                                        "perm_p_holm": None if method == "bm25" else s.perm_p_holm}
            print(f"| {label} | {len(cmp.queries)} | {method} | {_marks(cmp, method)} | {r['bytes']:,} | "
                  f"{r['build']:.1f} | {r['qps']:,.0f} | {r.get('terms', float('nan')):.0f} |", flush=True)
        print(f"| {label} | | splade_if latency / BM25's | {ratio:.2f}x | | | | |", flush=True)
        results[name] = entry
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n")


def trained(args) -> None:
    from rankstack.encode.splade import SpladeEncoder

    coll = Collection(args.collection)
    queries, qrels = coll.queries(args.split), coll.qrels(args.split)
    if args.max_queries and args.max_queries < len(queries):
        rng = np.random.default_rng(args.seed)
        keep = sorted(queries.qids[i] for i in rng.choice(len(queries), args.max_queries, replace=False))
        queries, qrels = queries.subset(keep), qrels.restrict(keep)
    ctx = Context(collection=coll, cache_dir=args.cache_dir)
    cand = (build("bm25", context=ctx) % args.depth)(queries)
    docids = sorted(set(cand.docids.tolist()))
    runs = {"bm25": cand}
    info = {}
    models = {"splade-tiny": "splade-tiny", **dict(m.split("=", 1) for m in args.models)}
    for label, model in models.items():
        enc = SpladeEncoder(model, precision=args.precision, threads=args.threads or None)
        t = time.perf_counter()
        mat = enc.cached_encode(coll.doc_texts(docids), docids, args.cache_dir)  # a re-run reuses it
        secs = time.perf_counter() - t
        from rankstack.retrieve.sparse_index import SparseIndex

        index = SparseIndex.build(mat, docids, enc.describe(), idf=enc.corpus_idf([d.contents for d in coll.corpus()]))
        for mode in args.modes:
            name = f"{label} ({'if' if mode == 'idf' else 'full'})"
            runs[name] = SparseRetriever(enc, index, mode=mode)(cand)
            info[name] = {"terms_per_doc": float(index.terms_per_doc().mean()), "expand_s": secs,
                          "docs_expanded": len(docids)}
    for base in ("bm25", f"splade-tiny ({'if' if args.modes[0] == 'idf' else 'full'})"):
        cmp = compare(runs, qrels, MEASURES, baseline=base)
        print(f"\nbaseline {base}: {len(cmp.queries)} queries, BM25 top {args.depth} reranked, "
              f"{len(docids)} documents expanded per model")
        print("| method | nDCG@10 | W/T/L | terms/doc |")
        print("|---|---:|---|---:|")
        for name in runs:
            s = cmp.stats["nDCG@10"][name]
            wtl = "-" if name == base else f"{s.wins}/{s.ties}/{s.losses}"
            terms = info.get(name, {}).get("terms_per_doc", float("nan"))
            print(f"| {name} | {_marks(cmp, name)} | {wtl} | {terms:.0f} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"info": info, "depth": args.depth, "queries": len(queries)}, indent=2) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    z = sub.add_parser("zeroshot")
    z.add_argument("--collections", nargs="+", default=["msmarco_dl19_subset", "cranfield", "cisi", "scifact"])
    z.add_argument("--no-dense", action="store_true")
    z.add_argument("--max-docs", type=int, default=None,
                   help="subsample larger corpora: every judged document plus seeded random others")
    t = sub.add_parser("trained")
    t.add_argument("--collection", default="scifact")
    t.add_argument("--models", nargs="*", default=[], metavar="LABEL=DIR")
    t.add_argument("--modes", nargs="+", default=["idf"], choices=["idf", "full"])
    t.add_argument("--depth", type=int, default=100)
    t.add_argument("--max-queries", type=int, default=None)
    for p in (z, t):
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--split", default="test")
        p.add_argument("--precision", default="auto")
        p.add_argument("--threads", type=int, default=0)
        p.add_argument("--cache-dir", type=Path, default=Path(".cache/rankstack"))
        p.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    (zeroshot if args.cmd == "zeroshot" else trained)(args)


if __name__ == "__main__":
    main()
