"""Loss comparison for cross-encoder training at an equal, small budget (results: benchmarks/rerank.md).

Every setting trains all-MiniLM-L6-v2 + a new head on the same seeded subset of scifact train
queries (1 positive + n BM25 negatives, one epoch, same lr/batch/length/seed), then reranks BM25's
top ``--depth`` for a fixed seeded subset of scifact test queries; nDCG@10 of the reranker alone
and interpolated with BM25 (z-score, alpha 0.5) is compared with BM25 by paired tests.

    python benchmarks/bench_losses.py --queries 300 --negatives 3 --max-length 128 --test-queries 100 \\
        --lr 1e-4 --batch-size 4 --out .cache/rerank_bench/losses2
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from rankstack.data.beir import Collection  # noqa: E402
from rankstack.evaluate import compare  # noqa: E402
from rankstack.rerank.base import combine_scores  # noqa: E402
from rankstack.recipes import reranker  # noqa: E402
from rankstack.recipes.reranker import RerankerTrainConfig  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from bench_rerank import first_stage  # noqa: E402

SETTINGS = {
    "bce": {"loss": "bce"},
    "ranknet": {"loss": "ranknet"},
    "lambdaloss": {"loss": "lambdaloss"},
    "listnet": {"loss": "listnet"},
    "approxndcg": {"loss": "approxndcg"},
    "infonce(t=1)": {"loss": "infonce(temperature=1.0)"},
    "listnet+fn-filter": {"loss": "listnet", "fn_filter": "dense", "fn_mode": "drop"},
    "listnet+curriculum": {"loss": "listnet", "curriculum": "recip", "curriculum_fraction": 0.5},
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path(".cache/rerank_bench/losses"))
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--negatives", type=int, default=3)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--test-queries", type=int, default=100)
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--batch-size", type=int, default=8, help="query groups per step")
    p.add_argument("--settings", nargs="+", default=list(SETTINGS))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("bm25s", "sentence_transformers", "transformers", "faiss"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    coll = Collection("scifact")
    qrels = coll.qrels("test")
    bm25 = first_stage("scifact", "test", "bm25", 100)
    rng = np.random.default_rng(0)
    test_q = sorted(rng.choice(bm25.query_ids, size=min(args.test_queries, len(bm25.query_ids)), replace=False))
    top = bm25.restrict(test_q).top_k(args.depth)
    runs = {"bm25": top.renamed("bm25")}
    rows = {}
    for name in args.settings:
        res_path = args.out / f"{name}.json"
        model_dir = args.out / f"model-{name}"
        if res_path.is_file():
            res = json.loads(res_path.read_text())
        else:
            cfg = RerankerTrainConfig(collection="scifact", out=model_dir, overwrite=True,
                                      cache_dir=Path(".cache/rankstack"), n_negatives=args.negatives,
                                      negative_depth=30, max_queries=args.queries,
                                      validation=0, patience=None, epochs=1, batch_size=args.batch_size, lr=args.lr,
                                      head_lr_multiplier=10.0, max_length=args.max_length, threads=args.threads,
                                      seed=0, **SETTINGS[name])
            t = time.perf_counter()
            report = reranker.run(cfg, progress=None)
            train_s = time.perf_counter() - t
            from rankstack.rerank.cross_encoder import CrossEncoderReranker

            rr = CrossEncoderReranker(str(model_dir), documents=coll, threads=args.threads)
            t = time.perf_counter()
            scores = rr.score([top.queries[q] for q in top.qids], coll.doc_texts(top.docids))
            res = {"train_seconds": train_s, "score_seconds": time.perf_counter() - t, "steps": report.steps,
                   "groups": report.groups, "filter": report.filter_report, "scores": scores.tolist()}
            res_path.write_text(json.dumps(res))
        scores = np.array(res["scores"])
        for label, method in (("alone", None), ("interp", "interpolate")):
            parts, pos = [], 0
            for _, d, s in top.groups():
                parts.append(combine_scores(scores[pos:pos + len(d)], s, d, method, 0.5, "zscore"))
                pos += len(d)
            runs[f"{name} {label}"] = top.replace(scores=np.concatenate(parts), name=f"{name} {label}")
        rows[name] = res
        print(f"{name}: trained {res['steps']} steps in {res['train_seconds'] / 60:.1f} min"
              + (f"; filter {res['filter']}" if res.get("filter") else ""), flush=True)
    cmp = compare(runs, qrels.restrict(test_q), ["nDCG@10"], baseline="bm25")
    print(cmp.to_text())
    print("\n| setting | nDCG@10 alone | nDCG@10 interp. with BM25 | train min |")
    print("|---|---|---|---|")
    s = cmp.stats["nDCG@10"]
    print(f"| BM25 | {s['bm25'].mean:.4f} | | |")
    for name in rows:
        a, b = s[f"{name} alone"], s[f"{name} interp"]
        print(f"| {name} | {a.mean:.4f} (p={a.t_p:.3f}) | {b.mean:.4f} (p={b.t_p:.3f}) | "
              f"{rows[name]['train_seconds'] / 60:.1f} |")
    (args.out / "summary.json").write_text(json.dumps({"args": vars(args) | {"out": str(args.out)},
                                                       "comparison": cmp.to_dict(),
                                                       "runs": {k: {kk: vv for kk, vv in v.items() if kk != "scores"}
                                                                for k, v in rows.items()}}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
