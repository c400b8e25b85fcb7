"""``rankstack ltr cv``: k-fold cross-validation of LTR models on LETOR partitions (DESIGN contract)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rankstack.cli._common import add_cache_arg, add_collection_args, add_verb, cache_dir, open_collection

TRAIN_EXAMPLE = """\
rankstack ltr train --collection scifact --split train --first-stage 'bm25 % 100' --out scifact-ltr
rankstack retrieve --collection scifact --retriever "bm25 % 100 >> ltr(model='scifact-ltr')" --out ltr.run"""

EXAMPLE = """\
rankstack ltr cv --folds ../shared/data/letor/MQ2008 --model lambdamart --json lm.json
rankstack ltr cv --folds S1.txt S2.txt S3.txt S4.txt S5.txt --model lambdamart --tune \\
    --model '{"name": "mlp", "args": {"loss": "listnet", "epochs": 30}}' --json cmp.json"""


def register(sub) -> None:
    p = add_verb(sub, "ltr", "Learning to rank over LETOR feature files.", EXAMPLE)
    verbs = p.add_subparsers(dest="ltr_verb", metavar="ACTION")
    cv = add_verb(verbs, "cv", "Cross-validate LTR models: fold k tests on Fk, validates on F(k-1), trains on "
                  "the rest; prints nDCG@1/3/5/10 and AP (trec_eval: queries without relevant documents "
                  "score 0).", EXAMPLE)
    cv.add_argument("--folds", nargs="+", required=True, metavar="F",
                    help="the partition files F1..Fn (LETOR S1..S5), or one folder holding S1..S5(.txt)")
    cv.add_argument("--model", action="append", dest="models", metavar="SPEC",
                    help="'lambdamart' or a JSON spec {\"name\": ..., \"args\": {...}} (mlp, attention); "
                         "repeat to compare models over all test queries (the first is the baseline)")
    cv.add_argument("--tune", action="store_true",
                    help="lambdamart: seeded grid search per fold, scored on that fold's validation set")
    cv.add_argument("--normalisation", choices=["none", "minmax", "zscore"], default="none",
                    help="per-query feature normalisation applied when reading (default: none; LETOR 4.0 "
                         "QueryLevelNorm files are already min-max normalised)")
    cv.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    cv.add_argument("--threads", type=int, default=1, help="threads per model (default: 1)")
    cv.add_argument("--save-models", type=Path, default=None,
                    help="keep each fold's model under DIR/<model>/fold<k>")
    cv.add_argument("--json", type=Path, default=None,
                    help="write the measures as JSON (one model: {nDCG@1, ..., AP, folds}; several: "
                         "{label: {...}, ..., comparison})")
    cv.set_defaults(func=run_cv)
    tr = add_verb(verbs, "train", "Train an 'ltr' reranker on a text collection: features of a first stage's "
                  "candidates, labels from the split's qrels, LambdaMART (or a neural spec).", TRAIN_EXAMPLE)
    add_collection_args(tr, split_default="train")
    tr.add_argument("--first-stage", default="bm25 % 100",
                    help="pipeline producing the candidates (default: 'bm25 %% 100')")
    tr.add_argument("--model", default="lambdamart", metavar="SPEC", help="'lambdamart' or a JSON spec")
    tr.add_argument("--valid-fraction", type=float, default=0.2,
                    help="share of the split's queries held out for early stopping (default: 0.2)")
    tr.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    tr.add_argument("--threads", type=int, default=1, help="threads (default: 1)")
    tr.add_argument("--out", type=Path, required=True, help="folder to save the reranker in")
    add_cache_arg(tr)
    tr.set_defaults(func=run_train)
    p.set_defaults(func=lambda args: _usage(p))


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


def parse_model_spec(text: str) -> str | dict[str, Any]:
    """``lambdamart`` or a JSON object; anything else is an InputError with the accepted forms."""
    from rankstack.errors import InputError

    text = text.strip()
    if text.startswith("{"):
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"--model {text!r} is not valid JSON ({exc.msg})",
                             fix='write e.g. \'{"name": "mlp", "args": {"loss": "listnet"}}\'') from None
        if not isinstance(spec, dict):
            raise InputError(f"--model JSON must be an object, got {type(spec).__name__}")
        return spec
    if not text.replace("_", "").replace("-", "").isalnum():
        raise InputError(f"--model {text!r} is neither a model name nor a JSON spec",
                         fix="use 'lambdamart' or '{\"name\": \"mlp\", \"args\": {...}}'")
    return text


def run_cv(args: argparse.Namespace) -> int:
    from rankstack.errors import InputError
    from rankstack.ltr.cv import compare_models, cross_validate, spec_label
    from rankstack.ltr.data import letor_folds
    from rankstack.registry import parse_spec
    from rankstack.storage import atomic_write_text

    if args.threads < 0:
        raise InputError(f"--threads must be 0 (all cores) or more, got {args.threads}")
    specs = [parse_model_spec(m) for m in (args.models or ["lambdamart"])]
    if args.tune:
        tuned = []
        for s in specs:
            name, a = parse_spec(s)
            if name == "lambdamart":
                a.setdefault("tune", True)
            tuned.append({"name": name, "args": a})
        specs = tuned
    folds = letor_folds(args.folds, normalisation=args.normalisation)
    labels = [spec_label(s) for s in specs]
    if len(set(labels)) != len(labels):
        labels = [f"{lab}#{i + 1}" for i, lab in enumerate(labels)]
    results = []
    for spec, label in zip(specs, labels):
        save = args.save_models / label.replace("/", "_") if args.save_models else None
        res = cross_validate(folds, spec, seed=args.seed, num_threads=args.threads, save_dir=save, label=label)
        print(res.to_text())
        print()
        results.append(res)
    payload: dict[str, Any]
    if len(results) == 1:
        payload = results[0].to_dict()
    else:
        comparison = compare_models(results)
        print(comparison.to_text())
        payload = {r.model: r.to_dict() for r in results}
        payload["comparison"] = comparison.to_dict()
    if args.json:
        atomic_write_text(args.json, json.dumps(payload, indent=2) + "\n")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from rankstack.ltr.features import train_ltr_reranker
    from rankstack.pipeline.expression import parse_pipeline
    from rankstack.registry import Context

    collection = open_collection(args)
    first = parse_pipeline(args.first_stage, Context(collection=collection, cache_dir=cache_dir(args)))
    reranker = train_ltr_reranker(collection, first, split=args.split, model=parse_model_spec(args.model),
                                  valid_fraction=args.valid_fraction, seed=args.seed, num_threads=args.threads)
    reranker.save(args.out)
    model = reranker.model
    detail = f"{model.best_iteration} trees" if getattr(model, "best_iteration", None) else \
        f"best epoch {getattr(model, 'best_epoch', '?')}"
    print(f"saved {args.out}: {type(model).__name__} over {len(reranker.extractor.feature_names)} features "
          f"({detail}); use it as \"{args.first_stage} >> ltr(model='{args.out}')\"")
    return 0
