"""Benchmark: learning to rank on LETOR 4.0 MQ2008 (5 folds) and LTR reranking on scifact.

Question 1: on MQ2008, how do rankstack's tuned LambdaMART, its MLP and its listwise self-attention
model (several losses) compare with LightGBM's ``LGBMRanker`` at default parameters, run directly?
Every model trains on the three training partitions of a fold, early-stops on the validation
partition, and is scored once on the test partition (DESIGN numbering: fold k tests on Sk).

Question 2: on scifact, what does ``bm25 % 100 >> ltr`` (LambdaMART over text features, trained on
the train split) gain or lose against BM25 on the test split?

Conventions: the headline figures follow trec_eval (a test query with no relevant document scores 0
and counts; 220 of MQ2008's 784 queries). The nDCG@10 table also gives the mean over the 564 queries
with a relevant document ("skip") and with the 220 scored 1 (LightGBM's NDCG convention).

    .venv/bin/python benchmarks/bench_ltr.py mq2008 [--folds ../shared/data/letor/MQ2008] [--quick]
    .venv/bin/python benchmarks/bench_ltr.py scifact [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FOLDS = ROOT.parent / "shared" / "data" / "letor" / "MQ2008"
MEASURES = ["nDCG@1", "nDCG@3", "nDCG@5", "nDCG@10", "AP"]


class LGBMRankerBaseline:
    """LightGBM's scikit-learn ``LGBMRanker`` with default parameters (optionally early stopping)."""

    def __init__(self, early_stopping: int | None, seed: int, threads: int) -> None:
        self.early_stopping, self.seed, self.threads = early_stopping, seed, threads

    def fit(self, train, valid):
        import lightgbm as lgb

        self.model = lgb.LGBMRanker(random_state=self.seed, n_jobs=self.threads, verbose=-1)
        kw = {}
        if self.early_stopping:
            kw = {"eval_set": [(valid.features, valid.labels)], "eval_group": [valid.group_sizes()],
                  "eval_at": [10], "callbacks": [lgb.early_stopping(self.early_stopping, verbose=False)]}
        self.model.fit(train.features, train.labels, group=train.group_sizes(), **kw)
        self.best_iteration = int(self.model.best_iteration_ or self.model.n_estimators)
        return self

    def predict(self, data, name="lgbmranker"):
        from rankstack.ltr.data import scores_to_run

        return scores_to_run(data, self.model.predict(data.features, num_threads=self.threads), name=name)


def mq2008_models(quick: bool) -> list[tuple[str, object]]:
    epochs = 10 if quick else 30
    models: list[tuple[str, object]] = [
        ("lambdamart (rankstack defaults)", "lambdamart"),
        ("lambdamart tuned", {"name": "lambdamart", "args": {"tune": True}}),
    ]
    for loss in ("listnet", "lambdaloss", "approxndcg", "neuralndcg"):
        models.append((f"mlp {loss}", {"name": "mlp", "args": {"loss": loss, "epochs": epochs}}))
    for loss in ("listnet", "lambdaloss", "approxndcg"):
        models.append((f"attention {loss}", {"name": "attention", "args": {"loss": loss, "epochs": epochs}}))
    return models


def conventions(result, norel: set[str]) -> dict[str, float]:
    """nDCG@10 and AP under the three conventions, from trec_eval per-query values."""
    from rankstack.evaluate import evaluate

    ev = evaluate(result.run, result.qrels, ["nDCG@10", "AP"])
    out = {}
    for m in ("nDCG@10", "AP"):
        vals = ev.per_query[m]
        rel = [v for q, v in vals.items() if q not in norel]
        out[f"{m} zero"] = float(np.mean(list(vals.values())))
        out[f"{m} skip"] = float(np.mean(rel))
        out[f"{m} one"] = float(np.mean([1.0 if q in norel else v for q, v in vals.items()]))
    return out


def run_mq2008(args: argparse.Namespace) -> int:
    from rankstack.ltr.cv import compare_models, cross_validate
    from rankstack.ltr.data import letor_folds, no_relevant_queries

    folds = letor_folds(args.folds)
    norel = {q for f in folds for q in no_relevant_queries(f.test)}
    specs: list[tuple[str, object]] = [
        ("LGBMRanker defaults", lambda: LGBMRankerBaseline(None, args.seed, args.threads)),
        ("LGBMRanker defaults + early stop", lambda: LGBMRankerBaseline(50, args.seed, args.threads)),
        *mq2008_models(args.quick),
    ]
    if args.only:
        specs = [s for s in specs if any(o in s[0] for o in args.only)]
    results = []
    rows = []
    for label, spec in specs:
        start = time.perf_counter()
        res = cross_validate(folds, spec, MEASURES, seed=args.seed, num_threads=args.threads, label=label)
        took = time.perf_counter() - start
        results.append(res)
        conv = conventions(res, norel)
        rows.append({"model": label, **res.mean, **conv, "fold_nDCG@10": [f.measures["nDCG@10"] for f in res.folds],
                     "seconds": took})
        print(f"{label}: nDCG@10 {res.mean['nDCG@10']:.4f} AP {res.mean['AP']:.4f} ({took:.0f}s)", file=sys.stderr)
    print(f"MQ2008, 5 folds, {len(norel)} of {sum(r.n_queries for r in results[:1])} test queries without a "
          "relevant document\n")
    print("| model | nDCG@1 | nDCG@3 | nDCG@5 | nDCG@10 | AP | nDCG@10 per fold (S1..S5) | s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | " + " | ".join(f"{r[m]:.4f}" for m in MEASURES)
              + f" | {' '.join(f'{v:.3f}' for v in r['fold_nDCG@10'])} | {r['seconds']:.0f} |")
    print("\n| model | nDCG@10 no-rel=0 (trec_eval) | skipped | no-rel=1 (LightGBM) | AP no-rel=0 | AP skipped |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['nDCG@10 zero']:.4f} | {r['nDCG@10 skip']:.4f} | {r['nDCG@10 one']:.4f} | "
              f"{r['AP zero']:.4f} | {r['AP skip']:.4f} |")
    if len(results) > 1:
        print()
        print(compare_models(results, ["nDCG@10", "AP"]).to_text())
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def run_scifact(args: argparse.Namespace) -> int:
    from rankstack.data.beir import Collection
    from rankstack.evaluate import compare
    from rankstack.ltr.features import FeatureExtractor, train_ltr_reranker
    from rankstack.retrieve.bm25 import BM25Retriever

    coll = Collection(args.collection)
    bm25 = BM25Retriever.from_collection(coll)
    first = bm25 % 100
    extractor = FeatureExtractor(coll)
    queries, qrels = coll.queries("test"), coll.qrels("test")
    runs = {"bm25": first(queries).renamed("bm25")}
    for seed in args.seeds:
        start = time.perf_counter()
        reranker = train_ltr_reranker(coll, first, split="train", model="lambdamart", seed=seed,
                                      num_threads=args.threads, extractor=extractor)
        runs[f"ltr seed {seed}"] = (first >> reranker)(queries).renamed(f"ltr seed {seed}")
        print(f"seed {seed}: {time.perf_counter() - start:.0f}s, {reranker.model.best_iteration} trees",
              file=sys.stderr)
    print(f"scifact test ({len(queries)} queries); LambdaMART over {len(extractor.feature_names)} features of "
          "BM25 top-100, trained on the train split (20% of its queries held out for early stopping)\n")
    print(compare(runs, qrels, ["nDCG@10", "AP", "RR@10", "R@100"], baseline="bm25").to_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    m = sub.add_parser("mq2008")
    m.add_argument("--folds", type=Path, default=DEFAULT_FOLDS)
    m.add_argument("--quick", action="store_true", help="10 epochs for neural models instead of 30")
    m.add_argument("--only", nargs="*", help="run only models whose label contains one of these")
    m.add_argument("--json", type=Path, default=None)
    s = sub.add_parser("scifact")
    s.add_argument("--collection", default="scifact")
    s.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    for q in (m, s):
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    return run_mq2008(args) if args.what == "mq2008" else run_scifact(args)


if __name__ == "__main__":
    sys.exit(main())
