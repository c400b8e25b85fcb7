"""``rankstack clicks simulate``: flags derived from :class:`rankstack.recipes.clicks.SimulateConfig`."""

from __future__ import annotations

import argparse

from rankstack.cli._common import add_verb
from rankstack.recipes.clicks import SimulateConfig
from rankstack.recipes.config import add_arguments, from_args

EXAMPLE = """\
rankstack clicks simulate --folds ../shared/data/letor/MQ2008 --fold 1 --model pbm --eta 1 \\
    --sessions 100000 --seed 0 --out clicks.jsonl
rankstack clicks simulate --folds S1.txt S2.txt S3.txt S4.txt S5.txt --model "dcm(continuation=0.5)" \\
    --sessions 20000 --out dcm.jsonl"""


def register(sub) -> None:
    p = add_verb(sub, "clicks", "Simulated click logs for unbiased learning to rank.", EXAMPLE)
    verbs = p.add_subparsers(dest="clicks_verb", metavar="ACTION")
    sim = add_verb(verbs, "simulate", "Train a production LambdaMART on a 1 percent sample of a fold's training queries, show its "
                   "top-k for queries drawn uniformly from the training fold to simulated users, and write "
                   "the sessions as a JSONL click log (+ <out>.meta.json describing the simulation).", EXAMPLE)
    add_arguments(sim, SimulateConfig)
    sim.set_defaults(func=run_simulate)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_simulate(args: argparse.Namespace) -> int:
    from rankstack.recipes import clicks

    print(clicks.run(from_args(SimulateConfig, args)).to_json())
    return 0
