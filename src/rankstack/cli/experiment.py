"""``rankstack experiment FILE.toml``: flags derived from :class:`rankstack.recipes.experiment.ExperimentConfig`."""

from __future__ import annotations

import argparse
from pathlib import Path

from rankstack.cli._common import add_verb
from rankstack.recipes.config import add_arguments, from_args
from rankstack.recipes.experiment import ExperimentConfig

EXAMPLE = """\
rankstack experiment examples/scifact.toml --out out/scifact
# the file:
collection = "scifact"
split = "test"
measures = ["nDCG@10", "AP", "R@100"]
baseline = "bm25"
[pipelines]
bm25 = "bm25"
dense = "dense(encoder='minilm')"
hybrid = "fuse(bm25, dense, method=rrf)\""""


def register(sub) -> None:
    p = add_verb(sub, "experiment",
                 "Run the pipelines of an experiment file, compare them with its baseline (significance "
                 "tests), and write TREC runs, measures.txt, results.json, per_query.csv and report.html.", EXAMPLE)
    p.add_argument("file", type=Path, help=ExperimentConfig.__dataclass_fields__["file"].metadata["help"])
    add_arguments(p, ExperimentConfig, exclude=("file",))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rankstack.recipes import experiment

    print(experiment.run(from_args(ExperimentConfig, args)).to_text())
    return 0
