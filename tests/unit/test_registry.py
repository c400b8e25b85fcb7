"""Registry: argument values are checked against the factory's type hints when a spec is built, and
misspelt names get the right suggestion."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import pytest

from rankstack.errors import InputError, suggest
from rankstack.registry import COMPONENT_MODULES, Context, build, check_args, register


@register("typed-toy", kind="typed_test")
def _typed(n: int = 3, x: float = 0.5, name: str = "a", flag: bool = False, maybe: int | None = None,
           words: list[str] | None = None, seq: Sequence[str] = ("a",), mode: Literal["rrf", "sum"] = "rrf",
           either: str | list[str] | None = "en", where: Path | None = None, table: dict[str, float] | None = None,
           anything=None) -> dict:
    return dict(n=n, x=x, name=name, flag=flag, maybe=maybe, words=words, seq=seq, mode=mode, either=either,
                where=where, table=table, anything=anything)


def toy(**args):
    return build({"name": "typed-toy", "args": args}, kind="typed_test")


@pytest.mark.parametrize("args", [
    {}, {"n": 7}, {"x": 2}, {"x": 2.5}, {"name": "b"}, {"flag": True}, {"maybe": None}, {"maybe": 4},
    {"words": ["a", "b"]}, {"words": ("a",)}, {"seq": ["t", "u"]}, {"mode": "sum"}, {"either": "x"},
    {"either": ["x", "y"]}, {"either": None}, {"where": "some/dir"}, {"where": Path("p")},
    {"table": {"a": 1, "b": 0.5}}, {"anything": object()},
])
def test_well_typed_arguments_pass(args):
    built = toy(**args)
    for key, value in args.items():
        assert built[key] is value


@pytest.mark.parametrize("args, words", [
    ({"n": "x"}, "n must be an integer, got 'x'"),
    ({"n": 2.5}, "n must be an integer, got 2.5"),
    ({"n": True}, "n must be an integer, got True"),  # bool is not an int
    ({"x": "0.5"}, "x must be a number, got '0.5'"),
    ({"x": False}, "x must be a number"),
    ({"x": None}, "x must be a number, got None"),
    ({"name": 5}, "name must be a string, got 5"),
    ({"flag": 1}, "flag must be true or false, got 1"),
    ({"maybe": "4"}, "maybe must be an integer or None"),
    ({"words": "ab"}, "words must be a list of strings or None"),  # a string is not a list
    ({"words": ["a", 1]}, "words must be a list of strings or None"),
    ({"seq": "title"}, "seq must be a list of strings"),
    ({"mode": "max"}, "mode must be one of 'rrf', 'sum'"),
    ({"either": 5}, "either must be a string, a list of strings or None, got 5"),
    ({"either": [1]}, "either must be a string, a list of strings or None"),
    ({"where": 5}, "where must be a path or None"),
    ({"table": {"a": "b"}}, "table must be a mapping or None"),
    ({"table": [1]}, "table must be a mapping or None"),
])
def test_badly_typed_arguments_name_component_argument_and_value(args, words):
    with pytest.raises(InputError) as info:
        toy(**args)
    assert str(info.value).startswith("typed-toy: ")
    assert words in str(info.value)


@pytest.mark.parametrize("args, words", [
    ({"threads": "x"}, "bm25: threads must be an integer, got 'x'"),
    ({"stemmer": 5}, "bm25: stemmer must be a string or None, got 5"),
    ({"stopwords": 5}, "bm25: stopwords must be a string, a list of strings or None, got 5"),
    ({"k1": "high"}, "bm25: k1 must be a number, got 'high'"),
    ({"b": [0.4]}, "bm25: b must be a number"),
    ({"k": 10.5}, "bm25: k must be an integer"),
    ({"fields": "title"}, "bm25: fields must be a list of strings"),
])
def test_bm25_argument_types(args, words):
    with pytest.raises(InputError) as info:
        build({"name": "bm25", "args": args}, context=Context())
    assert words in str(info.value)
    assert "e.g. bm25(" in str(info.value)  # the fix shows the default


def test_types_checked_before_the_factory_runs():
    # bm25 without a collection fails inside the factory; a bad type must be reported first
    with pytest.raises(InputError, match="threads must be an integer"):
        build("bm25", context=Context(), threads="many")


@pytest.mark.parametrize("typo, expected", [
    ("kl", "k1"), ("K1", "k1"), ("k2", "k1"), ("stemer", "stemmer"), ("stopword", "stopwords"),
    ("thread", "threads"), ("feilds", "fields"), ("methdo", "method"), ("token_patern", "token_pattern"),
])
def test_bm25_unknown_argument_suggests_the_right_name(typo, expected):
    with pytest.raises(InputError) as info:
        build({"name": "bm25", "args": {typo: 1}}, context=Context())
    assert f"did you mean {expected!r}?" in str(info.value)


def test_suggest_ranks_by_edit_distance_then_length():
    assert suggest("kl", ["k", "k1", "b"]) == ["k1"]
    assert suggest("bm26", ["bm25", "dense", "fuse"]) == ["bm25"]
    assert suggest("NDCG@10", ["nDCG@10", "P@10"]) == ["nDCG@10"]
    assert suggest("zzzz", ["bm25", "dense"]) == []
    assert suggest("dens", ["dense", "fuse"], n=3)[0] == "dense"


def test_check_args_directly_and_unresolvable_hints():
    def factory(a: int, b: "NotDefinedAnywhere" = None):  # noqa: F821
        return a

    check_args("f", factory, {"a": 1, "b": object()})  # an unresolvable hint is not checked
    with pytest.raises(InputError, match="f: a must be an integer"):
        check_args("f", factory, {"a": "1"})


def test_unbiased_modules_are_component_modules():
    assert "rankstack.unbiased.click_models" in COMPONENT_MODULES
    assert "rankstack.unbiased.estimators" in COMPONENT_MODULES


def test_missing_required_argument_is_an_input_error():
    @register("needs-model", kind="typed_test")
    def _needs(model: str, depth: int = 3) -> str:
        return model

    with pytest.raises(InputError, match=r"needs-model: missing required argument 'model'.*needs-model\(model=\.\.\.\)"):
        build("needs-model", kind="typed_test")
    assert build({"name": "needs-model", "args": {"model": "m"}}, kind="typed_test") == "m"


def test_call_checked_for_factories_called_directly():
    from rankstack.registry import call_checked, lookup

    fuse = lookup("fuse", "combinator")
    with pytest.raises(InputError, match=r"fuse: unknown argument 'n' \(did you mean 'k'\?\)"):
        call_checked("fuse", fuse, n=1)
    with pytest.raises(InputError, match="fuse: weights must be a list of numbers or None, got 'ab'"):
        call_checked("fuse", fuse, weights="ab")
    with pytest.raises(InputError, match="fuse: k must be a number"):
        call_checked("fuse", fuse, k="x")

    def two(a, b: int = 1, *, c: str):
        return a, b, c

    assert call_checked("two", two, 1, 2, c="x") == (1, 2, "x")  # positional slots are not "missing"
    with pytest.raises(InputError, match="missing required argument 'c'"):
        call_checked("two", two, 1)
    # the checker's own parameter names do not clash with a component's
    assert call_checked("named", lambda name=None, factory=None: (name, factory), name="n", factory="f") == ("n", "f")
