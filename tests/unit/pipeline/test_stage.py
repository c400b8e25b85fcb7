"""Stage composition: >> and % k, input checks, function stages."""

from __future__ import annotations

import pytest

from rankstack.errors import InputError
from rankstack.pipeline.stage import FunctionStage
from tests.fixtures.stages import QUERIES, Constant, Scale


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
