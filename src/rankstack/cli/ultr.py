"""``rankstack ultr train`` / ``rankstack ultr study``: unbiased learning to rank from click logs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rankstack.cli._common import add_verb

EXAMPLE = """\
rankstack clicks simulate --folds ../shared/data/letor/MQ2008 --fold 1 --eta 1 --sessions 100000 \\
    --interventions 100000 --out clicks.jsonl
rankstack ultr train --clicks clicks.jsonl --folds ../shared/data/letor/MQ2008 --fold 1 --estimator dla \\
    --out dla-model --json dla.json
rankstack ultr train --clicks clicks.jsonl --folds ../shared/data/letor/MQ2008 --fold 1 --estimator ips \\
    --propensities swap
rankstack ultr study --folds ../shared/data/letor/MQ2008 --out ultr-study          # every estimator, eta 1 and 2
rankstack ultr study --config examples/ultr_mq2008.toml --out ultr-study"""


def register(sub) -> None:
    p = add_verb(sub, "ultr", "Unbiased learning to rank from click logs (naive, IPS, DLA, regression EM).", EXAMPLE)
    verbs = p.add_subparsers(dest="ultr_verb", metavar="ACTION")
    tr = add_verb(verbs, "train", "Learn a ranker from a click log and evaluate it on the fold's test part "
                  "(nDCG@10, trec_eval convention: queries without a relevant document score 0).", EXAMPLE)
    tr.add_argument("--clicks", type=Path, required=True, help="JSONL click log (rankstack clicks simulate)")
    tr.add_argument("--folds", nargs="+", required=True, metavar="F", help="LETOR partitions S1..S5 or their folder")
    tr.add_argument("--fold", type=int, default=1, help="the fold the clicks were simulated on (default: 1)")
    tr.add_argument("--estimator", choices=["naive", "ips", "dla", "rem", "full-info"], required=True,
                    help="learner; full-info ignores the clicks and trains on the true labels (reference)")
    tr.add_argument("--propensities", default="logged", metavar="SRC",
                    help="ips: 'logged' (the log's propensities; oracle for simulated logs), 'swap' (estimate "
                         "from <clicks stem>.swap.jsonl interventions) or comma-separated values by rank")
    tr.add_argument("--hidden", type=int, nargs="*", default=[],
                    help="MLP hidden sizes, e.g. --hidden 32 (default: none = a linear scorer)")
    tr.add_argument("--epochs", type=int, default=None, help="training epochs (default: FitConfig's)")
    tr.add_argument("--lr", type=float, default=None, help="learning rate (default: FitConfig's)")
    tr.add_argument("--max-weight", type=float, default=None, help="clip inverse-propensity weights (default: none)")
    tr.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    tr.add_argument("--out", type=Path, default=None, help="save the trained scorer here (LTR neural model folder)")
    tr.add_argument("--json", type=Path, default=None, help="write nDCG@10 and estimated propensities as JSON")
    tr.set_defaults(func=run_train)
    st = add_verb(verbs, "study", "Run the whole ULTR study: every estimator, PBM eta 1 and 2, all folds; writes "
                  "results.json, report.md and propensity plots to --out.", EXAMPLE)
    st.add_argument("--config", type=Path, default=None, help="TOML study config (keys of StudyConfig, [fit] table)")
    st.add_argument("--folds", nargs="+", default=None, metavar="F", help="LETOR partitions or folder (overrides config)")
    st.add_argument("--fold-ids", type=int, nargs="+", default=None, help="which folds (default: 1 2 3 4 5)")
    st.add_argument("--etas", type=float, nargs="+", default=None, help="PBM severities (default: 1 2)")
    st.add_argument("--sessions", type=int, default=None, help="sessions per (fold, eta) (default: 100000)")
    st.add_argument("--seed", type=int, default=None, help="random seed (default: 0)")
    st.add_argument("--out", type=Path, required=True, help="output folder")
    st.set_defaults(func=run_study_cmd)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _propensities(src: str, clicks: Path):
    import numpy as np

    from rankstack.errors import InputError

    if src == "logged":
        return "logged"
    if src == "swap":
        from rankstack.cli.clicks import swap_path
        from rankstack.unbiased.clicklog import read_clicklog, read_meta
        from rankstack.unbiased.propensity import estimate_swap_propensities

        path = swap_path(clicks)
        meta = read_meta(clicks)
        if meta is None or "top1" not in meta:
            raise InputError("--propensities swap needs the log's description with the production ranker's top "
                             "documents", path=clicks.with_name(clicks.name + ".meta.json"),
                             fix="simulate with 'rankstack clicks simulate --interventions N'")
        est, _ = estimate_swap_propensities(read_clicklog(path), meta["top1"], int(meta.get("top_k", 10)))
        return est
    try:
        values = np.array([float(v) for v in src.split(",")])
    except ValueError:
        raise InputError(f"--propensities {src!r} is not 'logged', 'swap' or numbers",
                         fix="e.g. --propensities 1,0.9,0.7,0.5") from None
    return values


def run_train(args: argparse.Namespace) -> int:
    from rankstack.errors import InputError
    from rankstack.ltr.data import letor_folds
    from rankstack.storage import atomic_write_text
    from rankstack.unbiased.clicklog import read_clicklog
    from rankstack.unbiased.estimators import FitConfig, aggregate, train_estimator, train_full_info
    from rankstack.unbiased.study import evaluate_model

    cfg = FitConfig(hidden=tuple(args.hidden), seed=args.seed, max_weight=args.max_weight)
    if args.epochs is not None:
        cfg.epochs = args.epochs
    if args.lr is not None:
        cfg.lr = args.lr
    folds = letor_folds(args.folds[0] if len(args.folds) == 1 else args.folds)
    if not 1 <= args.fold <= len(folds):
        raise InputError(f"--fold {args.fold} does not exist", fix=f"choose 1..{len(folds)}")
    fold = folds[args.fold - 1]
    if args.estimator == "full-info":
        model = train_full_info(fold.train, cfg)
    else:
        lists = aggregate(read_clicklog(args.clicks), fold.train)
        props = _propensities(args.propensities, args.clicks) if args.estimator == "ips" else None
        model = train_estimator(args.estimator, lists, cfg, props)
    result = {"estimator": args.estimator, "fold": fold.index, **evaluate_model(model, fold.test),
              "propensities": None if model.propensities is None else [round(float(p), 5) for p in model.propensities],
              "fit": cfg.to_dict()}
    if args.out:
        model.ranker.save(args.out)
        result["model"] = str(args.out)
    text = json.dumps(result, indent=1)
    if args.json:
        atomic_write_text(args.json, text + "\n")
    print(text)
    return 0


def run_study_cmd(args: argparse.Namespace) -> int:
    from rankstack.unbiased.study import StudyConfig, load_config, run_study

    cfg = load_config(args.config) if args.config else StudyConfig()
    for key in ("folds", "fold_ids", "etas", "sessions", "seed"):
        value = getattr(args, key)
        if value is not None:
            setattr(cfg, key, value)
    payload = run_study(cfg, args.out)
    from rankstack.unbiased.study import ndcg_table

    print(ndcg_table(payload["summary"]))
    return 0
