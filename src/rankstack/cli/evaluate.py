"""``rankstack evaluate``: flags derived from :class:`rankstack.recipes.index.EvaluateConfig`."""

from __future__ import annotations

import argparse
from pathlib import Path

from rankstack.cli._common import add_verb
from rankstack.recipes.config import add_arguments, from_args
from rankstack.recipes.index import EvaluateConfig


def register(sub) -> None:
    p = add_verb(sub, "evaluate", "Evaluate TREC runs; prints a measures table (values equal trec_eval's).",
                 "rankstack evaluate --collection scifact --split test bm25.run dense.run -m nDCG@10 -m AP "
                 "-m R@100 --json results.json\n"
                 "rankstack evaluate --qrels qrels.txt run.txt -m 'AP(rel=2)' --baseline run\n"
                 "rankstack evaluate --collection scifact runs/*.run --execution ray --json all.json")
    fields = EvaluateConfig.__dataclass_fields__
    add_arguments(p, EvaluateConfig, exclude=("runs", "measures"))
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN", help=fields["runs"].metadata["help"])
    p.add_argument("-m", "--measure", dest="measures", action="extend", nargs="+", default=argparse.SUPPRESS,
                   help=fields["measures"].metadata["help"] + " (default: " + " ".join(fields["measures"].default_factory())
                   + ")")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rankstack.recipes import index

    print(index.run_evaluate(from_args(EvaluateConfig, args)).to_text())
    return 0
