"""Fuzzing pipeline expressions (rankstack.pipeline.expression.parse_pipeline).

Inputs: random text, expressions generated from the grammar (names, calls with literal arguments of
every type, ``>>``, ``% k``, ``fuse(...)``, parentheses) with edge values, and mutations of valid
expressions. Building, and running what builds on two toy queries, gives a Stage/Run or a
RankstackError, never another exception. No collection is given, so heavy components stop early.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rankstack.errors import InputError
from rankstack.pipeline.expression import parse_pipeline
from rankstack.pipeline.stage import Stage
from rankstack.registry import Context, register
from rankstack.types import Queries, Run
from tests.fuzz.fuzzlib import FUZZ, holds


class _Const(Stage):
    name = "fuzzconst"

    def __init__(self, n: int = 5) -> None:
        self.n = n

    def transform(self, inp):
        qids = np.repeat(np.array(inp.qids), self.n)
        docids = np.tile(np.array([f"d{i}" for i in range(self.n)]), len(inp.qids))
        return Run(qids, docids, np.tile(np.arange(self.n, 0, -1, dtype=float), len(inp.qids)), name="c")


class _Scale(Stage):
    name = "fuzzscale"

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def transform(self, inp):
        if not isinstance(inp, Run):  # as real rerankers do: they need candidates
            raise InputError("fuzzscale reranks a run; put a retriever before it")
        return inp.replace(scores=inp.scores * self.factor)


@register("fuzzconst", kind="retriever")
def _const(n: int = 5) -> Stage:
    if n < 1:
        raise InputError(f"fuzzconst: n must be positive, got {n}")
    return _Const(n)


@register("fuzzscale", kind="reranker")
def _scale(factor: float = 2.0) -> Stage:
    return _Scale(factor)


QUERIES = Queries(("q1", "q2"), ("one", "two"))
NAMES = ["fuzzconst", "fuzzscale", "bm25", "dense", "fuse", "bm2", "x", "reranker", "ltr", "_", "print",
         "__import__", "lambda", "None", "True"]
ARG_NAMES = ["n", "factor", "k1", "b", "method", "k", "threads", "stemmer", "fields", "model", "index",
             "weights", "norm", "depth", "x", "kl"]
LITERALS = ["1", "0", "-1", "2.5", "1e400", "-1e400", "10**100", "1e3", "True", "None", "'x'", "''", "rrf",
            "[1, 'a']", "[]", "()", "{}", "{'a': 1}", "{1, 2}", "b'x'", "1j", "...",
            "'\\ud800'", "'\\x00'", "[" * 30 + "]" * 30, "-'a'", "not 1", "f'x'", "x.y", "print(1)", "9" * 5000]
# Literals ast.literal_eval answers with TypeError (unhashable keys/members), fuzzed separately below.
UNHASHABLE = ["{[]: 1}", "{{}: 1}", "{[1]}", "{{'a': 1}: 2}"]


# Well-typed combinator arguments with edge values; arguments of any name and type are fuzzed below.
FUSE_OK = [("method", "rrf"), ("method", "combsum"), ("method", "'nope'"), ("k", "60"), ("k", "0"), ("k", "-1"),
           ("k", "1e400"), ("norm", "'minmax'"), ("norm", "'zscore'"), ("norm", "'x'"), ("weights", "[1, 2]"),
           ("weights", "[1]"), ("weights", "[]"), ("depth", "2"), ("depth", "0"), ("depth", "None")]


@st.composite
def expression(draw: st.DrawFn, depth: int = 0, literals: tuple[str, ...] = tuple(LITERALS),
               any_fuse_args: bool = False) -> str:
    literals = list(literals)

    def sub() -> str:
        return draw(expression(depth + 1, tuple(literals), any_fuse_args))

    def fuse_args() -> list[str]:
        if any_fuse_args:
            pairs = st.tuples(st.sampled_from(["method", "k", "norm", "weights", "depth", "x", "n"]),
                              st.sampled_from(literals + ["combsum", "combmnz", "linear", "'minmax'"]))
        else:
            pairs = st.sampled_from(FUSE_OK)
        return [f"{a}={v}" for a, v in draw(st.lists(pairs, max_size=2, unique_by=lambda t: t[0]))]

    kind = draw(st.integers(0, 5 if depth < 3 else 1))
    # mostly the toy components with their own argument names, so whole pipelines build and run
    name = draw(st.one_of(st.sampled_from(["fuzzconst", "fuzzconst", "fuzzscale"]), st.sampled_from(NAMES)))
    if kind == 0:
        return name
    if kind == 1:
        if name == "fuse":
            return f"fuse({', '.join(fuse_args())})"
        own = {"fuzzconst": ["n"], "fuzzscale": ["factor"]}.get(name, ARG_NAMES)
        arg = st.one_of(st.sampled_from(own), st.sampled_from(own), st.sampled_from(ARG_NAMES))
        value = st.one_of(st.sampled_from(["1", "3", "0.5", "2"]), st.sampled_from(literals))
        args = draw(st.lists(st.tuples(arg, value), max_size=2, unique_by=lambda t: t[0]))
        return f"{name}({', '.join(f'{a}={v}' for a, v in args)})"
    if kind == 2:
        return f"{sub()} >> {sub()}"
    if kind == 3:
        return f"{sub()} % {draw(st.sampled_from(literals + ['3', '100']))}"
    if kind == 4:
        return f"({sub()})"
    stages = [sub() for _ in range(draw(st.integers(0, 3)))]
    return f"fuse({', '.join(stages + fuse_args())})"


@st.composite
def combinator_calls(draw: st.DrawFn) -> str:
    """fuse(...) over stages that build, with arguments of any name and type."""
    stages = draw(st.lists(st.sampled_from(["fuzzconst", "fuzzconst % 3", "fuzzconst >> fuzzscale"]), max_size=3))
    pairs = st.tuples(st.sampled_from(["method", "k", "norm", "weights", "depth", "x", "n"]),
                      st.sampled_from(LITERALS + ["combsum", "linear", "'minmax'", "[1, 'a']", "'ab'"]))
    args = [f"{a}={v}" for a, v in draw(st.lists(pairs, max_size=2, unique_by=lambda t: t[0]))]
    return f"fuse({', '.join(stages + args)})"


@st.composite
def mutated_expression(draw: st.DrawFn) -> str:
    text = draw(expression())
    pos = draw(st.integers(0, len(text)))
    piece = draw(st.sampled_from(["(", ")", ">>", "%", ",", "=", "'", "\x00", "\n", "\\", "#", "**", ".", "@"]))
    return text[:pos] + piece + text[pos:]


def build_and_run(text: str):
    stage = parse_pipeline(text, Context())
    assert isinstance(stage, Stage)
    run = stage(QUERIES)
    assert isinstance(run, Run)
    return run


@FUZZ
@given(st.one_of(expression(), mutated_expression(), st.text(max_size=40),
                 st.text(alphabet="fuzzconst()>>%,= '[]1.e-", max_size=40)))
def test_pipeline_expressions(text):
    holds(lambda: build_and_run(text))


@FUZZ
@given(expression(literals=tuple(LITERALS + UNHASHABLE)))
def test_pipeline_expressions_with_unhashable_literals(text):
    holds(lambda: build_and_run(text))


@FUZZ
@given(st.one_of(expression(any_fuse_args=True), combinator_calls()))
def test_pipeline_expressions_with_any_combinator_arguments(text):
    holds(lambda: build_and_run(text))


# Inputs the fuzzer found that the expression builder once answered with another exception (the
# reason says which); each now gives an InputError.
def _found(text: str, exc: type[BaseException], reason: str):
    return pytest.param(text, id=text[:30])


FOUND = [
    _found("fuzzconst(n={[]: 1})", TypeError, "expression._Builder.literal: ast.literal_eval raises TypeError "
                                              "(unhashable) for a dict/set literal with list keys"),
    _found("fuzzconst(n={{}: 1})", TypeError, "expression._Builder.literal: unhashable dict key -> TypeError"),
    _found("fuzzconst % {[]: 1}", TypeError, "expression._Builder.literal: unhashable dict key -> TypeError"),
    _found("fuse(fuzzconst, fuzzconst, k={[1]})", TypeError, "expression._Builder.literal: unhashable set "
                                                             "member -> TypeError"),
    _found("fuse(n=1)", TypeError, "combinator called without registry.call_checked: unknown argument"),
    _found("fuse(fuzzconst, fuzzconst, weights='ab')", ValueError,
           "combinator called without registry.call_checked: weights is not a list of numbers"),
    _found("fuse(fuzzconst, fuzzconst, method=combsum, weights=[1, 'a'])", ValueError,
           "combinator called without registry.call_checked: a weight is not a number"),
]


@pytest.mark.parametrize("text", FOUND)
def test_found_by_the_fuzzer(text):
    with pytest.raises(InputError):
        build_and_run(text)
