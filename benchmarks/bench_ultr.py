"""Question: does unbiased learning to rank recover full-information NDCG@10 from biased clicks?

Runs the ULTR study (rankstack.recipes.ultr) -- PBM clicks on MQ2008 folds, eta 1 and 2, every
estimator next to the full-information reference -- and prints the nDCG@10 table and the
propensity tables. Results, report.md and propensity PNGs land in --out.

    .venv/bin/python benchmarks/bench_ultr.py --config examples/ultr_mq2008.toml --out out/ultr-mq2008
    .venv/bin/python benchmarks/bench_ultr.py --config examples/ultr_mq2008.toml --production inverted \\
        --out out/ultr-mq2008-inverted
    # several seeds (production sample + clicks), then one table over every (fold, seed) run:
    .venv/bin/python benchmarks/bench_ultr.py --config examples/ultr_mq2008.toml --seed 1 --out out/ultr-mq2008-seed1
    .venv/bin/python benchmarks/bench_ultr.py --combine out/ultr-mq2008 out/ultr-mq2008-seed1 out/ultr-mq2008-seed2
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path


def main() -> None:
    import dataclasses

    from rankstack.recipes.ultr import StudyConfig, load_config
    from rankstack.recipes.ultr import run as run_study
    from rankstack.unbiased.propensity import propensity_table
    from rankstack.unbiased.study import ndcg_table

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=None)
    ap.add_argument("--fold-ids", type=int, nargs="+", default=None)
    ap.add_argument("--etas", type=float, nargs="+", default=None)
    ap.add_argument("--sessions", type=int, default=None)
    ap.add_argument("--production", choices=["lambdamart", "inverted"], default=None)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--combine", type=Path, nargs="+", default=None,
                    help="print one table over the runs of several finished study folders (no training)")
    args = ap.parse_args()
    if args.combine:
        import json

        from rankstack.unbiased.study import summarise

        runs = [r for d in args.combine for r in json.loads((d / "results.json").read_text())["runs"]]
        summary = summarise(runs)
        print(f"{len(runs)} runs from {', '.join(map(str, args.combine))}")
        print(ndcg_table(summary))
        for eta, s in summary.items():
            if s["propensities"]:
                print(f"\nrelative propensities, eta={eta}")
                print(propensity_table(s["true_propensities"], s["propensities"]))
        return
    if args.out is None:
        ap.error("--out is required unless --combine is given")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("rankstack.train").setLevel(logging.WARNING)
    cfg = load_config(args.config) if args.config else StudyConfig()
    given = {k: getattr(args, k) for k in ("fold_ids", "etas", "sessions", "production", "seed")
             if getattr(args, k) is not None}
    cfg = dataclasses.replace(cfg, out=args.out, **given)
    t = time.time()
    payload = run_study(cfg).payload
    print(ndcg_table(payload["summary"]))
    for eta, s in payload["summary"].items():
        if s["propensities"]:
            print(f"\nrelative propensities, eta={eta}")
            print(propensity_table(s["true_propensities"], s["propensities"]))
    print(f"\n{time.time() - t:.0f}s; results in {args.out}")


if __name__ == "__main__":
    main()
