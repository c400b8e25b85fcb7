"""Pipeline expressions: ``"bm25(k1=1.2) % 100 >> reranker(model='m')"`` -> a Stage.

Why a tiny expression language: experiment files, the CLI and the service name pipelines as text,
and Python's own operator precedence (``%`` binds tighter than ``>>``) is what users already read.
The text is parsed with :mod:`ast` and walked; nothing is ever ``eval``-ed.

Grammar: ``name`` | ``name(arg=literal, ...)`` | ``expr >> expr`` | ``expr % int`` | ``(expr)`` |
``combinator(expr, expr, ..., arg=literal)`` where a combinator (e.g. ``fuse``) is registered with
kind "combinator" and receives built stages as positional arguments. ``name`` may also refer to a
named pipeline given in ``definitions`` (experiment files use this).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

from rankstack.errors import InputError
from rankstack.pipeline.stage import Stage
from rankstack.registry import Context, build, call_checked, lookup, names

__all__ = ["parse_pipeline", "parse_component", "format_component"]

STAGE_KINDS = ("retriever", "reranker", "stage")


def parse_pipeline(text: str, context: Context | None = None,
                   definitions: Mapping[str, Stage] | None = None) -> Stage:
    """Build the Stage described by ``text``."""
    if not isinstance(text, str) or not text.strip():
        raise InputError("empty pipeline expression", fix="write e.g. 'bm25 % 100 >> reranker'")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise InputError(f"cannot parse pipeline {text!r}: {exc.msg} at column {exc.offset}",
                         fix="use names, name(arg=value), '>>', '% k' and parentheses") from None
    return _Builder(text, context or Context(), dict(definitions or {})).stage(tree.body)


def format_component(name: str, args: Mapping[str, Any] | None = None) -> str:
    """The one spelling of a component: ``name`` or ``name(arg=literal, ...)`` (nested specs as calls)."""

    def lit(v: Any) -> str:
        if isinstance(v, Mapping) and set(v) <= {"name", "args"} and "name" in v:
            return format_component(str(v["name"]), v.get("args") or {})
        return repr(v)

    if not args:
        return name
    return f"{name}({', '.join(f'{k}={lit(v)}' for k, v in args.items())})"


def parse_component(text: str, what: str = "component") -> tuple[str, dict[str, Any]]:
    """``"lambdamart(num_leaves=63)"`` -> ``("lambdamart", {"num_leaves": 63})``.

    Why: every component named on the CLI or in TOML uses the pipeline-expression grammar (one spec
    syntax). An argument may itself be a component call (``mlp(loss=listnet(temperature=0.5))``,
    giving a ``{"name", "args"}`` spec). The old JSON form (``{"name": ..., "args": {...}}``) is
    refused with its new spelling in the fix.
    """
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"empty {what} spec", fix="write e.g. 'lambdamart' or 'mlp(loss=listnet)'")
    text = text.strip()
    if text.startswith("{"):
        raise InputError(f"{what} {text!r}: JSON specs are no longer accepted",
                         fix=f"write {_new_spelling(text)}")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise InputError(f"cannot parse {what} {text!r}: {exc.msg}",
                         fix="write name or name(arg=value, ...), e.g. 'lambdamart(num_leaves=63)'") from None
    return _component(tree.body, text, what)


def _component(node: ast.AST, text: str, what: str) -> tuple[str, dict[str, Any]]:
    if isinstance(node, ast.Name):
        return node.id, {}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        if node.args:
            raise InputError(f"{what} {text!r}: {node.func.id}(...) takes keyword arguments only",
                             fix=f"write {node.func.id}(name=value, ...)")
        args: dict[str, Any] = {}
        for kw in node.keywords:
            if kw.arg is None:
                raise InputError(f"{what} {text!r}: '**' is not allowed")
            if isinstance(kw.value, ast.Call):
                sub, sub_args = _component(kw.value, text, what)
                args[kw.arg] = {"name": sub, "args": sub_args}
                continue
            try:
                args[kw.arg] = ast.literal_eval(kw.value)
            except ValueError:
                if not isinstance(kw.value, ast.Name):
                    raise InputError(f"{what} {text!r}: argument {kw.arg!r} must be a literal "
                                     "(number, string, list) or a component call") from None
                args[kw.arg] = kw.value.id  # bare words as strings: loss=listnet
        return node.func.id, args
    raise InputError(f"{what} {text!r} is not a single component",
                     fix="write name or name(arg=value, ...), e.g. 'lambdamart(num_leaves=63)'")


def _new_spelling(text: str) -> str:
    """The pipeline-expression spelling of an old JSON spec, or a generic example."""
    import json

    try:
        spec = json.loads(text)
        return repr(format_component(str(spec["name"]), spec.get("args") or {}))
    except (ValueError, KeyError, TypeError, AttributeError):
        return "e.g. 'mlp(loss=listnet, epochs=30)'"


class _Builder:
    def __init__(self, text: str, context: Context, definitions: dict[str, Stage]) -> None:
        self.text, self.context, self.definitions = text, context, definitions

    def error(self, node: ast.AST, problem: str) -> InputError:
        col = getattr(node, "col_offset", 0)
        return InputError(f"pipeline {self.text!r}, column {col + 1}: {problem}")

    def stage(self, node: ast.AST) -> Stage:
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.RShift):
            return self.stage(node.left) >> self.stage(node.right)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
            k = self.literal(node.right)
            if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                raise self.error(node.right, f"'% k' needs a positive integer, got {k!r}")
            return self.stage(node.left) % k
        if isinstance(node, ast.Name):
            if node.id in self.definitions:
                return self.definitions[node.id]
            return build(node.id, STAGE_KINDS, context=self.context)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            name = node.func.id
            kwargs = {}
            for kw in node.keywords:
                if kw.arg is None:
                    raise self.error(kw, "'**' is not allowed")
                kwargs[kw.arg] = self.literal(kw.value)
            if name in names("combinator"):
                stages = [self.stage(a) for a in node.args]
                factory = lookup(name, "combinator")
                return call_checked(name, factory, *stages, **kwargs)
            if node.args:
                raise self.error(node, f"{name}(...) takes keyword arguments only")
            return build(name, STAGE_KINDS, context=self.context, **kwargs)
        raise self.error(node, f"unexpected {type(node).__name__}; expected a stage name, a call, "
                               "'>>' or '% k'")

    def literal(self, node: ast.AST) -> Any:
        try:
            return ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):  # e.g. {[]: 1}
            if isinstance(node, ast.Name):  # bare words as strings: method=rrf
                return node.id
            raise self.error(node, "arguments must be literals (numbers, strings, lists)") from None
