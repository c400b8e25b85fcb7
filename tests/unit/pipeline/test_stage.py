"""Stage composition: >> and % k, input checks, function stages."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.errors import InputError
from rankstack.pipeline.stage import FunctionStage, Stage
from rankstack.types import Queries, Run


class Scale(Stage):
    """Multiplies scores; a toy reranker."""

    def __init__(self, factor: float = 2.0) -> None:
        self.factor = factor
        self.name = f"scale({factor})"

    def transform(self, inp):
        return inp.replace(scores=inp.scores * self.factor)


class Constant(Stage):
    """Retrieves documents d0..d9 with descending scores for every query."""

    name = "constant"

    def transform(self, inp):
        qids = np.repeat(np.array(inp.qids), 10)
        docids = np.tile(np.array([f"d{i}" for i in range(10)]), len(inp.qids))
        scores = np.tile(np.arange(10, 0, -1, dtype=float), len(inp.qids))
        return Run(qids, docids, scores, name="constant")


QUERIES = Queries(("q1", "q2"), ("one", "two"))
def test_then_and_cutoff():
    pipe = Constant() % 3 >> Scale(10)
    run = pipe(QUERIES)
    assert run.to_dict()["q1"] == {"d0": 100.0, "d1": 90.0, "d2": 80.0}
    assert run.queries is QUERIES  # query texts travel with the run
    assert "constant % 3 >> scale(10)" == repr(pipe)


def test_cutoff_rejects_bad_k():
    with pytest.raises(InputError):
        Constant() % 0
    with pytest.raises(InputError):
        Constant() % 2.5  # type: ignore[operator]


def test_stage_rejects_wrong_input():
    with pytest.raises(InputError, match="takes Queries or a Run"):
        Constant()(["q1"])  # type: ignore[arg-type]


def test_function_stage():
    stage = FunctionStage(lambda inp: Constant()(inp).top_k(1), name="first")
    assert len(stage(QUERIES)) == 2
