"""Neural dense PRF with and without LoL on SciFact: does effectiveness hold as feedback grows?

Question (issue 21, after Zhu et al., "LoL: A Comparative Regularization Loss over Query
Reformulation Losses for Pseudo-Relevance Feedback", SIGIR 2022): trained at an equal budget (same
seed, data, batches, epochs; only ``lol_weight`` differs), does the LoL-regularised model keep its
nDCG@10 as the number of feedback documents grows from 1 to 10, where the unregularised one drifts?
Rows: dense MiniLM (no PRF), dense Rocchio (A0.4 B0.6), neural PRF without and with LoL; columns:
feedback depth. Several seeds are trained per setting; the table shows the mean (and min-max).

    RANKSTACK_DATA=/work/shared/data python benchmarks/bench_neural_prf.py --seeds 0 1 2 --epochs 20
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--collection", default="scifact")
    ap.add_argument("--cache-dir", type=Path, default=Path(".cache/rankstack"))
    ap.add_argument("--depths", type=int, nargs="+", default=[1, 3, 5, 10])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--lol-weight", type=float, default=1.0)
    ap.add_argument("--lol-detach", action="store_true", help="variant: stop-gradient on the shallower loss")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None, help="write all figures here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from rankstack.data.beir import Collection
    from rankstack.recipes.prf import NeuralPRFConfig, dense_retriever, evaluate_depths, prepare, train
    from rankstack.retrieve.neural_prf import rocchio

    base = NeuralPRFConfig(collection=args.collection, cache_dir=args.cache_dir, depths=args.depths,
                           epochs=args.epochs, threads=args.threads)
    dense = dense_retriever(base)
    coll = Collection(args.collection)
    queries, qrels = coll.queries("test"), coll.qrels("test")
    data = prepare(base, dense)
    rows: dict[str, list[dict[int, float]]] = {
        "dense (no PRF)": [evaluate_depths(dense, queries, qrels, args.depths, lambda q, fb, m: q)],
        "Rocchio A0.4 B0.6": [evaluate_depths(dense, queries, qrels, args.depths,
                                              lambda q, fb, m: rocchio(q, fb))],
    }
    seconds: dict[str, list[float]] = {}
    lol_name = f"neural PRF + LoL (a={args.lol_weight:g}{', detach' if args.lol_detach else ''})"
    for name, weight in (("neural PRF, no LoL", 0.0), (lol_name, args.lol_weight)):
        for seed in args.seeds:
            out = train(replace(base, lol_weight=weight, seed=seed, lol_detach=args.lol_detach), data)
            seconds.setdefault(name, []).append(out.seconds)
            rows.setdefault(name, []).append(
                evaluate_depths(dense, queries, qrels, args.depths, out.model.revise))
            print(f"{name} seed {seed}: {rows[name][-1]} ({out.seconds:.1f}s; last epoch {out.history[-1]})",
                  flush=True)

    print(f"\nnDCG@10 on {args.collection} test ({len(queries)} queries), by feedback depth; "
          f"mean over {len(args.seeds)} seeds [min-max]")
    print(f"{'run':38s}" + "".join(f"{'k=' + str(d):>24s}" for d in args.depths) + "   monotone?")
    summary = {}
    for name, results in rows.items():
        cells, means = [], []
        for d in args.depths:
            v = np.array([r[d] for r in results])
            means.append(float(v.mean()))
            cells.append(f"{v.mean():.4f}" + (f" [{v.min():.4f}-{v.max():.4f}]" if len(v) > 1 else ""))
        mono = all(b >= a - 1e-4 for a, b in zip(means, means[1:]))
        summary[name] = {"mean": dict(zip(args.depths, means)), "runs": results,
                         "train_seconds": seconds.get(name)}
        print(f"{name:38s}" + "".join(f"{c:>24s}" for c in cells) + f"   {'yes' if mono else 'no'}")
    for name, s in seconds.items():
        print(f"training time {name}: {np.mean(s):.1f}s per model ({args.epochs} epochs, {args.threads} thread(s))")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1, default=str))


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - t0:.0f}s")
