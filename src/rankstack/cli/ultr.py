"""``rankstack ultr train`` / ``ultr study``: flags derived from :mod:`rankstack.recipes.ultr`'s configs."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from rankstack.cli._common import add_verb
from rankstack.recipes.config import add_arguments, field_names, from_args
from rankstack.recipes.ultr import StudyConfig, TrainConfig

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
    add_arguments(tr, TrainConfig)
    tr.set_defaults(func=run_train)
    st = add_verb(verbs, "study", "Run the whole ULTR study: every estimator, PBM eta 1 and 2, all folds; writes "
                  "results.json, report.md and propensity plots to --out.", EXAMPLE)
    st.add_argument("--config", type=Path, default=None,
                    help="TOML study file (the keys are this command's options with underscores; a [fit] table); "
                         "options given here override it")
    add_arguments(st, StudyConfig)
    st.set_defaults(func=run_study)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_train(args: argparse.Namespace) -> int:
    from rankstack.recipes import ultr

    print(ultr.run_train(from_args(TrainConfig, args)).to_json())
    return 0


def run_study(args: argparse.Namespace) -> int:
    from rankstack.recipes import ultr

    if args.config is None:
        config = from_args(StudyConfig, args)
    else:
        given = {k: getattr(args, k) for k in field_names(StudyConfig) if hasattr(args, k)}
        config = dataclasses.replace(ultr.load_config(args.config), **given)
    print(ultr.run(config).to_text())
    return 0
