"""``rankstack robust shift|perturb|attack|certify|study``: flags derived from :class:`RobustConfig`."""

from __future__ import annotations

import argparse
from pathlib import Path

from rankstack.cli._common import add_verb
from rankstack.recipes.config import add_arguments, field_names, from_args
from rankstack.recipes.robust import SECTIONS, AugmentConfig, RobustConfig

EXAMPLE = """\
rankstack robust perturb --collections scifact cranfield --queries 30 --out out/robust-perturb
rankstack robust attack --config examples/robust_scifact.toml --out out/robust-attack
rankstack robust certify --collections scifact --certify-queries 15 --out out/robust-certify
rankstack robust study --config examples/robust_scifact.toml --out out/robust   # every section"""

HELP = {
    "shift": "Distribution shift: nDCG@10 of every pipeline on every shift collection.",
    "perturb": "Seeded query perturbations (typos, casing, order, stop words, neighbours, paraphrases): "
               "mean nDCG@10 drop, its spread and the share of queries losing more than 0.1.",
    "attack": "Black-box document attacks (imitation surrogate, substitution and trigger injection) under "
              "word budgets: success rate, rank gain, perturbation size, with and without smoothing.",
    "certify": "CertDR randomized smoothing: certified share of the reranker's top 10 per radius, clean nDCG cost.",
    "study": "Every section above, one report.",
}


def register(sub) -> None:
    p = add_verb(sub, "robust", "Robustness and adversarial evaluation of rankers (JSON, CSV and HTML report).",
                 EXAMPLE)
    verbs = p.add_subparsers(dest="robust_verb", metavar="ACTION")
    for name, text in HELP.items():
        v = add_verb(verbs, name, text, EXAMPLE)
        v.add_argument("--config", type=Path, default=None,
                       help="TOML file (keys are this command's options with underscores; a [pipelines] table); "
                            "options given here override it")
        add_arguments(v, RobustConfig)
        v.set_defaults(func=run, sections=SECTIONS if name == "study" else (name,))
    aug = add_verb(verbs, "augment", "Write a BEIR copy whose training queries gain typo/neighbour twins (same "
                   "judgements), for perturbation-aware training with 'rankstack train reranker'.",
                   "rankstack robust augment --collection scifact --out .cache/robust/scifact-aug\n"
                   "rankstack train reranker --collection .cache/robust/scifact-aug --out .cache/models/ce-aug")
    add_arguments(aug, AugmentConfig)
    aug.set_defaults(func=run_augment)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_augment(args: argparse.Namespace) -> int:
    from rankstack.recipes import robust

    print(robust.run_augment(from_args(AugmentConfig, args)))
    return 0


def run(args: argparse.Namespace) -> int:
    from rankstack.recipes import robust

    if args.config is None:
        config = from_args(RobustConfig, args)
    else:
        given = {k: getattr(args, k) for k in field_names(RobustConfig) if hasattr(args, k)}
        config = robust.with_overrides(robust.load_config(args.config), **given)
    print(robust.run(config, tuple(args.sections)).to_text())
    return 0
