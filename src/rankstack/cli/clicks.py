"""``rankstack clicks simulate``: simulated user sessions over a production ranker's top-k (ULTR)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rankstack.cli._common import add_verb

EXAMPLE = """\
rankstack clicks simulate --folds ../shared/data/letor/MQ2008 --fold 1 --model pbm --eta 1 \\
    --sessions 100000 --seed 0 --out clicks.jsonl
rankstack clicks simulate --folds S1.txt S2.txt S3.txt S4.txt S5.txt --model dcm --continuation 0.5 \\
    --sessions 20000 --out dcm.jsonl"""


def register(sub) -> None:
    p = add_verb(sub, "clicks", "Simulated click logs for unbiased learning to rank.", EXAMPLE)
    verbs = p.add_subparsers(dest="clicks_verb", metavar="ACTION")
    sim = add_verb(verbs, "simulate", "Train a production LambdaMART on a 1 percent sample of a fold's training queries, show its "
                   "top-k for queries drawn uniformly from the training fold to simulated users, and write "
                   "the sessions as a JSONL click log (+ <out>.meta.json describing the simulation).", EXAMPLE)
    sim.add_argument("--folds", nargs="+", required=True, metavar="F",
                     help="LETOR partitions S1..S5 (files) or their folder")
    sim.add_argument("--fold", type=int, default=1, help="fold whose training part is clicked on (default: 1)")
    sim.add_argument("--model", choices=["pbm", "cascade", "dcm"], default="pbm", help="click model (default: pbm)")
    sim.add_argument("--eta", type=float, default=1.0, help="pbm: severity of position bias (default: 1)")
    sim.add_argument("--eps", type=float, default=0.1, help="click noise on non-relevant documents (default: 0.1)")
    sim.add_argument("--continuation", type=float, nargs="+", default=[0.5],
                     help="dcm: probability of going on after a click, one value or one per rank (default: 0.5)")
    sim.add_argument("--sessions", type=int, default=100_000, help="number of sessions (default: 100000)")
    sim.add_argument("--top-k", type=int, default=10, help="documents shown per session (default: 10)")
    sim.add_argument("--production-fraction", type=float, default=0.01,
                     help="fraction of training queries whose true labels train the production ranker (default: 0.01)")
    sim.add_argument("--interventions", type=int, default=0,
                     help="also write N swap-intervention sessions (rank 1 swapped with a random rank, Joachims "
                          "et al. 2017) to <out stem>.swap.jsonl, for 'ultr train --propensities swap'")
    sim.add_argument("--no-propensities", action="store_true", help="do not log the simulator's propensities")
    sim.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    sim.add_argument("--out", type=Path, required=True, help="the JSONL click log to write")
    sim.set_defaults(func=run_simulate)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def swap_path(out: Path) -> Path:
    return out.with_name(out.stem + ".swap" + (out.suffix or ".jsonl"))


def run_simulate(args: argparse.Namespace) -> int:
    import numpy as np

    from rankstack.errors import InputError
    from rankstack.ltr.data import letor_folds
    from rankstack.unbiased.click_models import make_click_model, simulate_sessions
    from rankstack.unbiased.clicklog import write_clicklog, write_meta
    from rankstack.unbiased.propensity import simulate_swap_interventions
    from rankstack.unbiased.study import shown_lists, train_production_ranker

    if args.sessions < 1:
        raise InputError(f"--sessions must be at least 1, got {args.sessions}")
    if args.interventions < 0:
        raise InputError(f"--interventions must be 0 or more, got {args.interventions}")
    params = {"eps": args.eps}
    if args.model == "pbm":
        params["eta"] = args.eta
    elif args.model == "dcm":
        params["continuation"] = args.continuation
    model = make_click_model(args.model, **params)
    folds = letor_folds(args.folds[0] if len(args.folds) == 1 else args.folds)
    if not 1 <= args.fold <= len(folds):
        raise InputError(f"--fold {args.fold} does not exist", fix=f"choose 1..{len(folds)}")
    fold = folds[args.fold - 1]
    production = train_production_ranker(fold.train, args.production_fraction, seed=args.seed + fold.index)
    qids, docids, labels, lengths = shown_lists(fold.train, production.scores(fold.train), args.top_k)
    rng = np.random.default_rng([args.seed, fold.index])
    log_ = simulate_sessions(model, qids, docids, labels, lengths, args.sessions, rng,
                             log_propensities=not args.no_propensities)
    write_clicklog(log_, args.out)
    exam = model.examination(args.top_k)
    meta = {"click_model": model.spec(), "fold": fold.describe(), "sessions": args.sessions, "top_k": args.top_k,
            "seed": args.seed, "production_fraction": args.production_fraction,
            "production_queries": production.queries,
            "true_relative_propensities": None if exam is None else (exam / exam[0]).tolist(),
            "top1": {q: str(d[0]) for q, d in zip(qids, docids)}}
    write_meta(args.out, meta)
    if args.interventions:
        inter = simulate_swap_interventions(model, qids, docids, labels, lengths, args.interventions,
                                            np.random.default_rng([args.seed, fold.index, 1]))
        write_clicklog(inter, swap_path(args.out))
        write_meta(swap_path(args.out), {**meta, "sessions": args.interventions, "interventions": "swap-1-k"})
    print(json.dumps({"out": str(args.out), "sessions": len(log_), "queries": len(qids),
                      "clicks_per_session": round(float(log_.clicks.sum()) / len(log_), 4),
                      "interventions": str(swap_path(args.out)) if args.interventions else None}))
    return 0
