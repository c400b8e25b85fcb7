"""``rankstack ltr cv`` / ``ltr train``: flags derived from :mod:`rankstack.recipes.ltr`'s configs."""

from __future__ import annotations

import argparse

from rankstack.cli._common import add_verb
from rankstack.recipes.config import add_arguments, from_args
from rankstack.recipes.ltr import CVConfig, TrainConfig

TRAIN_EXAMPLE = """\
rankstack ltr train --collection scifact --split train --first-stage 'bm25 % 100' --out scifact-ltr
rankstack retrieve --collection scifact --retriever "bm25 % 100 >> ltr(model='scifact-ltr')" --out ltr.run"""

EXAMPLE = """\
rankstack ltr cv --folds ../shared/data/letor/MQ2008 --model lambdamart --json lm.json
rankstack ltr cv --folds S1.txt S2.txt S3.txt S4.txt S5.txt --model "lambdamart(num_leaves=63)" --tune \\
    --model "mlp(loss=listnet, epochs=30)" --json cmp.json"""


def register(sub) -> None:
    p = add_verb(sub, "ltr", "Learning to rank over LETOR feature files.", EXAMPLE)
    verbs = p.add_subparsers(dest="ltr_verb", metavar="ACTION")
    cv = add_verb(verbs, "cv", "Cross-validate LTR models: fold k tests on Fk, validates on F(k-1), trains on "
                  "the rest; prints nDCG@1/3/5/10 and AP (trec_eval: queries without relevant documents "
                  "score 0).", EXAMPLE)
    add_arguments(cv, CVConfig, exclude=("models",))
    models = CVConfig.__dataclass_fields__["models"].metadata
    cv.add_argument("--model", dest="models", action="extend", nargs="+", metavar="SPEC",
                    default=argparse.SUPPRESS, help=models["help"] + " (default: lambdamart)")
    cv.set_defaults(func=run_cv)
    tr = add_verb(verbs, "train", "Train an 'ltr' reranker on a text collection: features of a first stage's "
                  "candidates, labels from the split's qrels, LambdaMART (or a neural spec).", TRAIN_EXAMPLE)
    add_arguments(tr, TrainConfig)
    tr.set_defaults(func=run_train)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_cv(args: argparse.Namespace) -> int:
    from rankstack.recipes import ltr

    print(ltr.run(from_args(CVConfig, args)).to_text())
    return 0


def run_train(args: argparse.Namespace) -> int:
    from rankstack.recipes import ltr

    config = from_args(TrainConfig, args)
    print(ltr.run_train(config).to_text(config.first_stage))
    return 0
