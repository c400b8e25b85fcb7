"""``rankstack train reranker``: train a cross-encoder on a collection's training split."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from rankstack.cli._common import add_cache_arg, add_collection_args, add_verb, cache_dir, open_collection

log = logging.getLogger(__name__)

EXAMPLE = ("rankstack train reranker --collection scifact --split train --first-stage bm25 --loss listnet \\\n"
           "    --negatives bm25 --n-negatives 7 --epochs 3 --max-length 192 --out .cache/models/ce-scifact\n"
           "rankstack train reranker --collection scifact --loss lambdaloss --curriculum recip "
           "--fn-filter dense --out m2")


def register(sub) -> None:
    p = add_verb(sub, "train", "Train a learned component (for now: a cross-encoder reranker).", EXAMPLE)
    what = p.add_subparsers(dest="what", metavar="WHAT")
    r = what.add_parser("reranker", help="train a cross-encoder reranker",
                        description="Train a cross-encoder reranker on judged queries with mined negatives; "
                                    "validates nDCG@10 on held-out training queries; saves a folder that "
                                    "'rankstack rerank' and sentence_transformers.CrossEncoder load.",
                        epilog="example:\n  " + EXAMPLE.replace("\n", "\n  "),
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_collection_args(r, split_default="train")
    r.add_argument("--out", type=Path, required=True, help="model folder to write (atomically)")
    r.add_argument("--base-model", default="minilm",
                   help="'minilm' (all-MiniLM-L6-v2 + new head) or a local transformers folder")
    r.add_argument("--loss", default="listnet", help="any registered loss (listnet, bce, ranknet, lambdaloss, "
                                                    "approxndcg, infonce, ...) (default: listnet)")
    r.add_argument("--loss-args", default=None, help='loss parameters as JSON, e.g. \'{"temperature": 1}\'')
    r.add_argument("--first-stage", default="bm25", help="first stage for validation and curricula (default: bm25)")
    r.add_argument("--negatives", choices=("bm25", "dense", "random"), default="bm25")
    r.add_argument("--n-negatives", type=int, default=7)
    r.add_argument("--negative-depth", type=int, default=30, help="sample hard negatives from this top k")
    r.add_argument("--graded", action="store_true", help="one list per query with graded labels")
    r.add_argument("--max-queries", type=int, default=None, help="train on a seeded subset of the queries")
    r.add_argument("--validation", type=int, default=60, help="training queries held out for validation")
    r.add_argument("--validation-depth", type=int, default=30)
    r.add_argument("--validate-every", type=int, default=None, help="steps between validations "
                                                                    "(default: every epoch)")
    r.add_argument("--patience", type=int, default=2)
    r.add_argument("--epochs", type=int, default=1)
    r.add_argument("--max-steps", type=int, default=None)
    r.add_argument("--batch-size", type=int, default=8, help="query groups per step")
    r.add_argument("--grad-accum", type=int, default=1,
                   help="optimiser step every N batches (small batches run faster per pair on a CPU)")
    r.add_argument("--lr", type=float, default=5e-5)
    r.add_argument("--head-lr-multiplier", type=float, default=10.0)
    r.add_argument("--warmup-ratio", type=float, default=0.1)
    r.add_argument("--max-length", type=int, default=192)
    r.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
    r.add_argument("--threads", type=int, default=None)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--curriculum", choices=("recip", "norm"), default=None,
                   help="difficulty curriculum (MacAvaney et al., SIGIR 2020)")
    r.add_argument("--curriculum-fraction", type=float, default=0.5)
    r.add_argument("--fn-filter", default=None, metavar="TEACHER",
                   help="false-negative filter teacher: 'dense' or a cross-encoder folder (Xu et al., CIKM 2022)")
    r.add_argument("--fn-mode", choices=("drop", "downweight"), default="drop")
    r.add_argument("--fn-margin", type=float, default=0.0)
    r.add_argument("--resample-negatives", action="store_true",
                   help="draw fresh negatives for every epoch instead of reusing one draw")
    r.add_argument("--distill", default=None, metavar="FIRST_STAGE",
                   help="also distil from a first stage's scores, e.g. \"fuse(bm25, dense, method=combsum, "
                        "norm='z-score')\" (listwise KL mixed with --loss)")
    r.add_argument("--distill-weight", type=float, default=0.5, help="weight of the distillation term (0-1)")
    r.add_argument("--distill-temperature", type=float, default=1.0)
    r.add_argument("--time-budget", type=float, default=None, metavar="MINUTES",
                   help="stop training after this many minutes (keeps the best validated state)")
    r.add_argument("--checkpoint-dir", type=Path, default=None, help="also keep the trainer's best checkpoint")
    r.add_argument("--report", type=Path, default=None, help="write the training report as JSON")
    add_cache_arg(r)
    r.set_defaults(func=run_reranker)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_reranker(args: argparse.Namespace) -> int:
    from rankstack.errors import InputError
    from rankstack.train.reranker_data import RerankerTrainConfig, train_reranker

    loss: object = args.loss
    if args.loss_args:
        try:
            loss_args = json.loads(args.loss_args)
        except json.JSONDecodeError as exc:
            raise InputError(f"--loss-args is not JSON ({exc.msg})", fix='write e.g. \'{"temperature": 1.0}\'') from None
        if not isinstance(loss_args, dict):
            raise InputError("--loss-args must be a JSON object")
        loss = {"name": args.loss, "args": loss_args}
    for name in ("n_negatives", "epochs", "batch_size", "grad_accum", "max_length", "negative_depth"):
        if getattr(args, name) < 1 and not (name == "n_negatives" and getattr(args, name) == 0):
            raise InputError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    from rankstack.losses import get_loss

    get_loss(loss)  # fail on a bad loss name before any work
    cfg = RerankerTrainConfig(
        base_model=args.base_model, loss=loss, first_stage=args.first_stage, negatives=args.negatives,
        n_negatives=args.n_negatives, negative_depth=args.negative_depth, graded=args.graded,
        max_queries=args.max_queries, validation=args.validation, validation_depth=args.validation_depth,
        validate_every=args.validate_every, patience=args.patience, epochs=args.epochs, max_steps=args.max_steps,
        batch_size=args.batch_size, grad_accum=args.grad_accum, lr=args.lr, head_lr_multiplier=args.head_lr_multiplier,
        warmup_ratio=args.warmup_ratio, max_length=args.max_length, precision=args.precision,
        threads=args.threads, seed=args.seed, curriculum=args.curriculum,
        curriculum_fraction=args.curriculum_fraction, fn_filter=args.fn_filter, fn_mode=args.fn_mode,
        fn_margin=args.fn_margin, resample_negatives=args.resample_negatives, distill=args.distill,
        distill_weight=args.distill_weight, distill_temperature=args.distill_temperature,
        time_budget_minutes=args.time_budget, progress=True)
    collection = open_collection(args)
    report = train_reranker(collection, args.out, cfg, split=args.split, cache_dir=cache_dir(args),
                            checkpoint_dir=args.checkpoint_dir)
    if args.report:
        from rankstack.storage import atomic_write_text

        atomic_write_text(args.report, json.dumps(report.to_dict(), indent=2) + "\n")
    best = "n/a" if report.best_validation is None else f"{report.best_validation:.4f}"
    print(f"wrote {args.out}: {report.groups} groups x {report.steps} steps in {report.seconds / 60:.1f} min "
          f"({report.precision}); validation nDCG@10 {best} on {report.validation_queries} held-out "
          f"{args.split} queries" + (f"; {report.filter_report['flagged']} false negatives flagged"
                                      if report.filter_report else ""))
    return 0
