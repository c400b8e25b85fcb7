"""``rankstack train student``: flags derived from :class:`rankstack.recipes.student.StudentConfig`."""

from __future__ import annotations

import argparse

from rankstack.cli._common import add_verb
from rankstack.recipes.config import add_arguments, from_args
from rankstack.recipes.student import StudentConfig

EXAMPLE = """\
rankstack train student --teacher .cache/models/ce-scifact --layers 2 --collection scifact \\
    --kd-loss margin_mse --epochs 2 --time-budget 25 --out .cache/models/ce-scifact-l2
rankstack rerank --model .cache/models/ce-scifact-l2 --collection scifact --run bm25.run -k 100 \\
    --interpolate 0.5 --out student.run"""


def register_train(what) -> None:
    p = add_verb(what, "student", "Distil a cross-encoder into a smaller one: the student keeps --layers of the "
                 "teacher's layers and learns the teacher's scores (Margin-MSE or listwise KL, cached per teacher "
                 "and pairs); saves a cross-encoder folder that 'rankstack rerank --model' loads.", EXAMPLE)
    add_arguments(p, StudentConfig)
    p.set_defaults(func=run_student)


def run_student(args: argparse.Namespace) -> int:
    from rankstack.recipes import student

    print(student.run(from_args(StudentConfig, args)).to_text())
    return 0
