"""Specs built through the registry (did-you-mean) and pipeline expressions."""

from __future__ import annotations

import pytest

from rankstack.errors import InputError, UnknownComponentError
from rankstack.pipeline.expression import parse_pipeline
from rankstack.pipeline.stage import Stage
from rankstack.registry import Context, build, names, parse_spec, register
from tests.fixtures.stages import QUERIES, Constant, Scale


@register("test-constant", kind="retriever")
def _constant() -> Stage:
    return Constant()


@register("test-scale", kind="reranker")
def _scale(factor: float = 2.0) -> Stage:
    return Scale(factor)




def test_build_from_spec_and_unknown_names():
    assert isinstance(build({"name": "test-scale", "args": {"factor": 3}}), Scale)
    assert "test-constant" in names("retriever")
    with pytest.raises(UnknownComponentError) as info:
        build("test-constnt")
    assert "did you mean 'test-constant'" in str(info.value)
    with pytest.raises(InputError, match="did you mean 'factor'"):
        build({"name": "test-scale", "args": {"factr": 3}})
    with pytest.raises(InputError, match="no 'name'"):
        parse_spec({"args": {}})
    with pytest.raises(InputError, match="unknown keys"):
        parse_spec({"name": "x", "argz": {}})


def test_expression_precedence_and_args():
    # names with dashes are not identifiers; register identifier aliases for the expression test
    register("tconst", kind="retriever")(_constant)
    register("tscale", kind="reranker")(_scale)
    pipe = parse_pipeline("tconst % 4 >> tscale(factor=0.5)")
    run = pipe(QUERIES)
    assert run.to_dict()["q2"] == {"d0": 5.0, "d1": 4.5, "d2": 4.0, "d3": 3.5}
    assert len(parse_pipeline("(tconst >> tscale) % 2")(QUERIES)) == 4


def test_expression_errors():
    with pytest.raises(InputError, match="cannot parse"):
        parse_pipeline("bm25 >>")
    with pytest.raises(InputError, match="positive integer"):
        parse_pipeline("bm25 % -3", Context())
    with pytest.raises(InputError, match="empty"):
        parse_pipeline("  ")
    with pytest.raises(UnknownComponentError, match="did you mean 'bm25'"):
        parse_pipeline("bm2")
    with pytest.raises(InputError, match="unexpected"):
        parse_pipeline("1 + 2")


def test_expression_definitions():
    pipe = parse_pipeline("base % 2", definitions={"base": Constant()})
    assert len(pipe(QUERIES)) == 4
