"""``rankstack train reranker|neural-prf``: flags derived from the recipes' configs
(:class:`rankstack.recipes.reranker.RerankerTrainConfig`, :class:`rankstack.recipes.prf.NeuralPRFConfig`)."""

from __future__ import annotations

import argparse
import json

from rankstack.cli._common import add_verb
from rankstack.errors import InputError
from rankstack.recipes.config import add_arguments, from_args
from rankstack.recipes.prf import NeuralPRFConfig
from rankstack.recipes.reranker import RerankerTrainConfig

EXAMPLE = """\
rankstack train reranker --collection scifact --split train --first-stage bm25 --loss listnet \\
    --negatives bm25 --n-negatives 7 --epochs 3 --max-length 192 --out .cache/models/ce-scifact
rankstack train reranker --collection scifact --loss "lambdaloss" --curriculum recip --fn-filter dense --out m2
rankstack train reranker --collection scifact --loss "listnet(temperature=0.5)" --out m3 --overwrite"""

PRF_EXAMPLE = """\
rankstack train neural-prf --collection scifact --out .cache/models/nprf-lol --lol-weight 1.0
rankstack retrieve --collection scifact --retriever "neural_prf(model='.cache/models/nprf-lol', fb_docs=5)" --out nprf.run"""


def register(sub) -> None:
    p = add_verb(sub, "train", "Train a learned component: a cross-encoder reranker or a neural PRF model.",
                 EXAMPLE + "\n" + PRF_EXAMPLE)
    what = p.add_subparsers(dest="what", metavar="WHAT")
    r = add_verb(what, "reranker", "Train a cross-encoder reranker on judged queries with mined negatives; "
                 "validates nDCG@10 on held-out training queries; saves a folder that 'rankstack rerank' and "
                 "sentence_transformers.CrossEncoder load.", EXAMPLE)
    add_arguments(r, RerankerTrainConfig)
    r.add_argument("--loss-args", default=None, help=argparse.SUPPRESS)  # removed: answered with the new spelling
    r.set_defaults(func=run_reranker)
    n = add_verb(what, "neural-prf", "Train neural dense pseudo-relevance feedback (a query rewritten from its "
                 "feedback documents' embeddings), optionally with the LoL regulariser over feedback depths.",
                 PRF_EXAMPLE)
    add_arguments(n, NeuralPRFConfig)
    n.set_defaults(func=run_neural_prf)
    _register_more(what)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _register_more(what) -> None:
    """Other ``train WHAT`` sub-verbs live in ``cli/_train_<what>.py`` modules exposing
    ``register_train(what)``; they are discovered, so adding one never edits this file."""
    import importlib
    import pkgutil

    import rankstack.cli as cli_package

    for info in sorted(pkgutil.iter_modules(cli_package.__path__), key=lambda m: m.name):
        if info.name.startswith("_train_"):
            module = importlib.import_module(f"rankstack.cli.{info.name}")
            module.register_train(what)


def _loss_args_error(loss: str, text: str) -> InputError:
    """The old ``--loss NAME --loss-args JSON`` form, answered with its one-syntax spelling."""
    from rankstack.pipeline.expression import format_component

    try:
        args = json.loads(text)
    except json.JSONDecodeError:
        args = None
    new = format_component(loss, args) if isinstance(args, dict) else f"{loss}(temperature=0.5)"
    return InputError("--loss-args is no longer accepted: loss parameters go inside --loss",
                      fix=f'write --loss "{new}"')


def run_reranker(args: argparse.Namespace) -> int:
    from rankstack.recipes import reranker

    if args.loss_args is not None:
        raise _loss_args_error(getattr(args, "loss", "listnet"), args.loss_args)
    print(reranker.run(from_args(RerankerTrainConfig, args)).to_text())
    return 0


def run_neural_prf(args: argparse.Namespace) -> int:
    from rankstack.recipes import prf

    print(prf.run(from_args(NeuralPRFConfig, args)).to_text())
    return 0
