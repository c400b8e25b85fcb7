"""``rankstack synth-corpus``: flags derived from :class:`rankstack.recipes.scale.SynthCorpusConfig`."""

from __future__ import annotations

import argparse

from rankstack.cli._common import add_verb
from rankstack.recipes.config import add_arguments, from_args
from rankstack.recipes.scale import SynthCorpusConfig


def register(sub) -> None:
    p = add_verb(sub, "synth-corpus", "Write a seeded synthetic BEIR collection (Zipfian terms, MS MARCO-like "
                                      "lengths, qrels by construction) for scale tests.",
                 "rankstack synth-corpus --docs 100000 --out /tmp/syn100k\n"
                 "rankstack index --collection /tmp/syn100k --chunk-size 50000 --out /tmp/syn100k-bm25")
    add_arguments(p, SynthCorpusConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rankstack.recipes import scale

    print(scale.run(from_args(SynthCorpusConfig, args)).to_text())
    return 0
