"""Compression table: FAISS PQ, OPQ, IVF-PQ and JPQ at equal bytes per document, on scifact test.

For each size (``--m``: bytes/doc of 8-bit sub-quantisers; 48 = 32x and 16 = 96x of 384-d fp32):
nDCG@10 on the test queries and its share of the same encoder's flat (exact) index. JPQ (Zhan et
al., CIKM 2021; ``rankstack.retrieve.jpq``) starts from the OPQ index and trains its centroids on the
scifact *train* queries (hard negatives from the current PQ index; ``--validation`` of them held out
to pick the best state), query encoder frozen (its vectors cached), and optionally (``--train-encoder``)
with the query encoder trained too. Corpus and query vectors come from the embedding cache that the
``dense`` retriever uses. Prints a markdown table and writes JSON lines (``--out``).

    nice -n 5 python benchmarks/bench_jpq.py --collection scifact --m 48 16 --out benchmarks/jpq_results.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np

from rankstack.data.beir import Collection
from rankstack.encode.base import cached_encode, load_encoder
from rankstack.evaluate import evaluate
from rankstack.recipes.reranker_data import split_queries
from rankstack.retrieve.dense_index import DenseIndex
from rankstack.retrieve.jpq_train import encode_queries, search_run, train_jpq


DISJOINT: list[str] = []  # test queries none of whose relevant documents is relevant to a training query


def ndcg(index: DenseIndex, qids, qvecs, qrels) -> float:
    return float(evaluate(search_run(index, qids, qvecs, 100), qrels, ["nDCG@10"]).mean["nDCG@10"])


def ndcg_disjoint(index: DenseIndex, qids, qvecs, qrels) -> float:
    pos = {q: i for i, q in enumerate(qids)}
    sub = [q for q in qids if q in set(DISJOINT)]
    return ndcg(index, sub, qvecs[[pos[q] for q in sub]], qrels.restrict(sub))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--collection", default="scifact")
    ap.add_argument("--m", type=int, nargs="+", default=[48, 16])
    ap.add_argument("--cache-dir", default=".cache/rankstack")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--loss", default="listnet")
    ap.add_argument("--scale", type=float, default=20.0)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--validation", type=int, default=80)
    ap.add_argument("--patience", type=int, default=4)
    ap.add_argument("--train-encoder", action="store_true", help="also run JPQ with the query encoder trained")
    ap.add_argument("--encoder-lr", type=float, default=5e-6)
    ap.add_argument("--encoder-minutes", type=float, default=10.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--kinds", nargs="+", default=["pq", "opq", "ivfpq"], help="FAISS baselines (opq always: JPQ starts there)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--start", default="opq", choices=("opq", "pq"), help="the index JPQ starts from")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    coll = Collection(args.collection)
    enc = load_encoder("minilm", precision=args.precision, threads=args.threads)
    docs = list(coll.corpus())
    vecs = cached_encode(enc, [d.contents for d in docs], [d.docid for d in docs], args.cache_dir)
    docids = [d.docid for d in docs]
    test_q, test_qrels = coll.queries("test"), coll.qrels("test")
    train_q, train_qrels = coll.queries("train"), coll.qrels("train")
    tq = list(test_q.qids)
    tvec = cached_encode(enc, list(test_q.texts), tq, args.cache_dir, progress=False)
    trvec = cached_encode(enc, list(train_q.texts), list(train_q.qids), args.cache_dir, progress=False)
    flat = ndcg(DenseIndex.build(vecs, docids, enc.encoder_id, index="flat"), tq, tvec, test_qrels)
    # how much test relevance sits on documents that training queries also judge relevant (JPQ moves those)
    train_pos = {d for q, ds in train_qrels.to_dict().items() for d, g in ds.items() if g > 0}
    test_pairs = [(q, d) for q, ds in test_qrels.to_dict().items() for d, g in ds.items() if g > 0]
    overlap = sum(d in train_pos for _, d in test_pairs) / max(len(test_pairs), 1)
    DISJOINT.extend(q for q, ds in test_qrels.to_dict().items()
                    if q in set(tq) and not any(g > 0 and d in train_pos for d, g in ds.items()))
    flat_idx = DenseIndex.build(vecs, docids, enc.encoder_id, index="flat")
    rows = [{"method": "flat", "bytes": 4 * vecs.shape[1], "ndcg": flat,
             "ndcg_disjoint": ndcg_disjoint(flat_idx, tq, tvec, test_qrels), "n_disjoint": len(DISJOINT)}]
    print(json.dumps(rows[-1]), flush=True)
    print(f"flat nDCG@10 {flat:.4f}; {overlap:.1%} of test (query, relevant doc) pairs have a doc relevant to "
          f"some train query", flush=True)
    for m in args.m:
        for seed in args.seeds:
            built = {}
            for kind in [args.start] + [k for k in args.kinds if k != args.start]:
                t0 = time.perf_counter()
                idx = built[kind] = DenseIndex.build(vecs, docids, enc.encoder_id, index=kind, m=m, nbits=8,
                                                     seed=seed, threads=args.threads)
                rows.append({"method": kind, "m": m, "seed": seed, "bytes": m, "ndcg": ndcg(idx, tq, tvec, test_qrels),
                             "ndcg_disjoint": ndcg_disjoint(idx, tq, tvec, test_qrels),
                             "build_s": time.perf_counter() - t0, **({"nlist": idx.params["nlist"],
                                                                      "nprobe": idx.params["nprobe"]}
                                                                     if kind == "ivfpq" else {})})
                print(json.dumps(rows[-1]), flush=True)
            variants = [("jpq", False)] + ([("jpq+qenc", True)] if args.train_encoder else [])
            for name, train_enc in variants:
                import faiss  # JPQ starts from (a copy of) the OPQ index measured above

                opq = built[args.start]
                idx = DenseIndex(faiss.clone_index(opq.index), opq.docids, opq.encoder_id, opq.params)
                tr, va = split_queries(list(train_q.qids), args.validation, seed=seed)
                qenc = load_encoder("minilm", precision="fp32", threads=args.threads).model if train_enc else None
                fit = train_jpq(idx, train_q, train_qrels, train_qids=tr, val_qids=va,
                                qvecs=None if train_enc else trvec, query_encoder=qenc, loss=args.loss,
                                scale=args.scale, depth=args.depth, epochs=args.epochs, batch_size=32, lr=args.lr,
                                encoder_lr=args.encoder_lr, patience=args.patience, seed=seed, threads=args.threads,
                                time_budget=60 * args.encoder_minutes if train_enc else None, progress=False)
                qv = encode_queries(fit.module, list(test_q.texts)) if train_enc else tvec
                rows.append({"method": f"{name} from {args.start}", "m": m, "seed": seed, "bytes": m,
                             "ndcg": ndcg(idx, tq, qv, test_qrels), "ndcg_disjoint": ndcg_disjoint(idx, tq, qv, test_qrels),
                             "train_s": fit.seconds, "steps": fit.steps, "val_start": fit.initial_validation,
                             "val_best": fit.best_validation, "kept_initial": fit.kept_initial,
                             "loss": args.loss, "lr": args.lr, "scale": args.scale})
                print(json.dumps(rows[-1]), flush=True)
    print("\n| method | bytes/doc | compression | nDCG@10 | % of flat |\n|---|---|---|---|---|")
    for r in rows:
        seed = "" if "seed" not in r else f" (seed {r['seed']})"
        print(f"| {r['method']}{seed} | {r['bytes']} | "
              f"{4 * vecs.shape[1] / r['bytes']:.0f}x | {r['ndcg']:.4f} | {100 * r['ndcg'] / flat:.1f}% |")
    if args.out:
        with open(args.out, "a", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps({**r, "flat": flat, "collection": args.collection}) + "\n")


if __name__ == "__main__":
    main()
