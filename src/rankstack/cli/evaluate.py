"""``rankstack evaluate``: measure TREC runs against a collection's qrels (trec_eval semantics)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rankstack.cli._common import add_collection_args, add_verb, open_collection
from rankstack.data import read_qrels, read_run
from rankstack.storage import atomic_write_text

DEFAULT_MEASURES = ["nDCG@10", "AP", "R@100", "RR@10"]


def register(sub) -> None:
    p = add_verb(sub, "evaluate", "Evaluate TREC runs; prints a measures table (values equal trec_eval's).",
                 "rankstack evaluate --collection scifact --split test bm25.run dense.run -m nDCG@10 -m AP "
                 "-m R@100 --json results.json\n"
                 "rankstack evaluate --qrels qrels.txt run.txt -m 'AP(rel=2)' --baseline run")
    add_collection_args(p)
    p.set_defaults(collection=None)
    for action in p._actions:  # --collection is optional here: --qrels may replace it
        if action.dest == "collection":
            action.required = False
    p.add_argument("--qrels", type=Path, default=None, help="a qrels file (TREC or BEIR TSV) instead of --collection")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="TREC run files")
    p.add_argument("-m", "--measure", action="append", dest="measures",
                   help=f"ir_measures name, repeatable (default: {' '.join(DEFAULT_MEASURES)})")
    p.add_argument("--missing", choices=["skip", "zero"], default="skip",
                   help="queries in the qrels but not in a run: skip them (trec_eval default) or count 0 "
                        "(trec_eval -c)")
    p.add_argument("--baseline", default=None,
                   help="run name (file stem) to compare the others with: paired t-test and permutation "
                        "test, Holm-corrected")
    p.add_argument("--json", type=Path, default=None, help="write {run: {measure: mean}} here")
    p.add_argument("--per-query", type=Path, default=None, help="with --baseline: per-query CSV here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rankstack.errors import InputError
    from rankstack.evaluate import compare, evaluate, format_table

    if args.qrels is None and args.collection is None:
        raise InputError("give --collection (with --split) or --qrels")
    qrels = read_qrels(args.qrels) if args.qrels else open_collection(args).qrels(args.split)
    measures = args.measures or DEFAULT_MEASURES
    runs = {}
    for path in args.runs:
        r = read_run(path)
        if r.name in runs:
            raise InputError(f"two runs are named {r.name!r}", path=path, fix="give run files distinct names")
        runs[r.name] = r
    results = {name: evaluate(r, qrels, measures, missing=args.missing) for name, r in runs.items()}
    if args.baseline is not None:
        if args.baseline not in runs:
            raise InputError(f"baseline {args.baseline!r} is not one of the runs {sorted(runs)}")
        comparison = compare(runs, qrels, measures, baseline=args.baseline, missing=args.missing)
        print(comparison.to_text())
        if args.per_query:
            comparison.to_csv(args.per_query)
    else:
        print(format_table(results))
    if args.json:
        payload = {name: dict(ev.mean) for name, ev in results.items()}
        atomic_write_text(args.json, json.dumps(payload, indent=2) + "\n")
    return 0
