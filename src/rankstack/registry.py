"""Name -> factory registry for every component, built from ``{"name": ..., "args": {...}}`` specs.

Why a registry: the same spec drives the Python API, the CLI, experiment files and the service, and
an unknown name fails with suggestions instead of an AttributeError deep inside.

Components register themselves with ``@register("bm25", kind="retriever")`` in their own module.
To keep ``import rankstack`` light (no torch, faiss or lightgbm), component modules are imported
only when a name is looked up; ``COMPONENT_MODULES`` lists where built-ins live. A module that is not
present in this build is skipped; one whose optional dependency is missing registers its names
anyway (factories import heavy libraries lazily and raise MissingDependencyError when called). A
module that fails to import for another reason is logged and named in any later unknown-name error,
so one broken component never takes the others down.
"""

from __future__ import annotations

import collections.abc as cabc
import importlib
import inspect
import logging
import numbers
import os
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rankstack.errors import InputError, UnknownComponentError, suggest

__all__ = ["register", "build", "call_checked", "names", "Context", "parse_spec", "check_args",
           "COMPONENT_MODULES"]

# Modules that define built-in components; imported on first lookup. Missing modules are skipped,
# so later work can add its module here before or after it exists.
COMPONENT_MODULES: list[str] = [
    "rankstack.retrieve.bm25",
    "rankstack.retrieve.dense",
    "rankstack.retrieve.fusion",
    "rankstack.retrieve.prf",
    "rankstack.retrieve.prf_dense",
    "rankstack.retrieve.neural_prf",
    "rankstack.retrieve.pq",
    "rankstack.retrieve.sparse",
    "rankstack.retrieve.late_interaction",
    "rankstack.encode.sentence_transformers",
    "rankstack.encode.onnx",
    "rankstack.rerank.cross_encoder",
    "rankstack.rerank.llm",
    "rankstack.rerank.late_interaction",
    "rankstack.rerank.lora",
    "rankstack.rerank.cur",
    "rankstack.ltr.gbdt",
    "rankstack.ltr.neural",
    "rankstack.ltr.features",
    "rankstack.losses",
    "rankstack.unbiased.click_models",
    "rankstack.unbiased.estimators",
]


@dataclass
class Context:
    """What a factory may need besides its own args: the collection, a cache folder, a seed."""

    collection: Any = None
    cache_dir: Path | None = None
    seed: int = 0
    extras: dict[str, Any] = field(default_factory=dict)


_FACTORIES: dict[str, dict[str, Callable[..., Any]]] = {}
_IMPORT_ERRORS: dict[str, BaseException] = {}
log = logging.getLogger(__name__)
_loaded = False


def register(name: str, kind: str = "stage") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a factory under ``name`` for ``kind`` (e.g. "retriever", "reranker", "loss")."""

    def decorate(factory: Callable[..., Any]) -> Callable[..., Any]:
        table = _FACTORIES.setdefault(kind, {})
        if name in table and table[name] is not factory:
            other = table[name]
            same = getattr(other, "__qualname__", None) == getattr(factory, "__qualname__", None) and \
                getattr(other, "__module__", None) == getattr(factory, "__module__", None)
            if not same:
                raise ValueError(f"{kind} {name!r} is registered twice")
        table[name] = factory
        return factory

    return decorate


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    for module in COMPONENT_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                continue  # this module is not part of this build
            _IMPORT_ERRORS[module] = exc
        except Exception as exc:  # one broken component must not take down the others
            _IMPORT_ERRORS[module] = exc
    for module, exc in _IMPORT_ERRORS.items():
        log.warning("components of %s are unavailable: %s: %s", module, type(exc).__name__, exc)
    _loaded = True


def names(kind: str | None = None) -> list[str]:
    """Registered names of one kind, or of every kind (``stage`` covers retrievers and rerankers)."""
    _load_builtins()
    if kind is None:
        return sorted({n for table in _FACTORIES.values() for n in table})
    return sorted(_FACTORIES.get(kind, {}))


def kinds_of(name: str) -> list[str]:
    _load_builtins()
    return [k for k, table in _FACTORIES.items() if name in table]


def lookup(name: str, kind: str | tuple[str, ...]) -> Callable[..., Any]:
    _load_builtins()
    kinds = (kind,) if isinstance(kind, str) else kind
    for k in kinds:
        if name in _FACTORIES.get(k, {}):
            return _FACTORIES[k][name]
    known = {n for k in kinds for n in _FACTORIES.get(k, {})}
    error = UnknownComponentError(name, "/".join(kinds), known)
    if _IMPORT_ERRORS:
        broken = "; ".join(f"{m}: {type(e).__name__}: {e}" for m, e in _IMPORT_ERRORS.items())
        error.message += f" [some component modules failed to load: {broken}]"
    raise error


def parse_spec(spec: str | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Normalise ``"bm25"`` or ``{"name": "bm25", "args": {...}}`` to ``(name, args)``."""
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, Mapping):
        if "name" not in spec:
            raise InputError(f"spec {dict(spec)!r} has no 'name'", fix='write {"name": ..., "args": {...}}')
        extra = set(spec) - {"name", "args"}
        if extra:
            raise InputError(f"spec {spec['name']!r} has unknown keys {sorted(extra)}",
                             fix="a spec has only 'name' and 'args'")
        args = spec.get("args") or {}
        if not isinstance(args, Mapping):
            raise InputError(f"spec {spec['name']!r}: 'args' must be a mapping, got {type(args).__name__}")
        return str(spec["name"]), dict(args)
    raise InputError(f"a spec is a name or a {{name, args}} mapping, got {type(spec).__name__}")


def build(spec: str | Mapping[str, Any], kind: str | tuple[str, ...] = ("retriever", "reranker", "stage"),
          context: Context | None = None, **overrides: Any) -> Any:
    """Build a component from its spec. The factory receives ``context=`` if it declares it."""
    name, args = parse_spec(spec)
    args.update(overrides)
    factory = lookup(name, kind)
    if "context" in inspect.signature(factory).parameters:
        args["context"] = context or Context()
    return call_checked(name, factory, **args)


def call_checked(name: str, factory: Callable[..., Any], /, *positional: Any, **args: Any) -> Any:
    """Call ``factory`` after checking ``args``: unknown names (with a suggestion), missing required
    ones, and types against its hints. ``build`` uses it; so should any code that calls a registered
    factory itself (e.g. combinators, which also get positional stages)."""
    params = inspect.signature(factory).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [a for a in args if a not in params and not accepts_any]
    if unknown:
        allowed = [p for p in params if p != "context" and params[p].kind not in
                   (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
        hints = {u: suggest(u, allowed, n=1) for u in unknown}
        hint = "; ".join(f"{u!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for u, h in hints.items())
        raise InputError(f"{name}: unknown argument {hint}",
                         fix=f"{name} accepts {', '.join(allowed) or 'no arguments'}")
    positional_slots = [p for p, par in params.items() if par.kind in (
        inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)][:len(positional)]
    missing = [p for p, par in params.items() if p not in args and p not in positional_slots
               and par.default is inspect.Parameter.empty
               and par.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    if missing:
        raise InputError(f"{name}: missing required argument {', '.join(repr(m) for m in missing)}",
                         fix=f"write {name}({', '.join(f'{m}=...' for m in missing)})")
    check_args(name, factory, {a: v for a, v in args.items() if a != "context"})
    return factory(*positional, **args)


# --- argument types ---------------------------------------------------------------------------------
# Why here: a spec's values come from text (pipeline expressions, TOML, JSON, CLI), so a wrong type
# must fail when the spec is built, naming the component and the argument, not as a TypeError deep in
# a library. The factory's own type hints are the single statement of what it accepts.

_SEQUENCES = (list, tuple, cabc.Sequence, cabc.Iterable, cabc.Collection, cabc.MutableSequence)
_MAPPINGS = (dict, cabc.Mapping, cabc.MutableMapping)


def _hints(factory: Callable[..., Any]) -> dict[str, Any]:
    """Resolved type hints of ``factory``'s parameters; a hint that cannot be resolved is left out."""
    target = inspect.unwrap(factory)
    if inspect.isclass(target):  # a registered class: its constructor's hints, not its attributes'
        target = target.__init__
    try:
        return typing.get_type_hints(target)
    except Exception:  # an unresolvable forward reference: resolve parameter by parameter
        pass
    out: dict[str, Any] = {}
    namespace = dict(getattr(target, "__globals__", {}))
    for key, ann in getattr(target, "__annotations__", {}).items():
        try:
            out[key] = eval(ann, namespace) if isinstance(ann, str) else ann  # noqa: S307 (own source)
        except Exception:
            continue
    return out


def _conforms(value: Any, hint: Any) -> bool:
    if hint is Any or hint is object or isinstance(hint, (typing.TypeVar, str, typing.ForwardRef)):
        return True
    if hint is None or hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        return any(_conforms(value, a) for a in args)
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin is typing.Annotated:
        return _conforms(value, args[0])
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if isinstance(hint, type) and issubclass(hint, os.PathLike):
        return isinstance(value, (str, os.PathLike))
    base = origin or hint
    if base in _MAPPINGS:
        if not isinstance(value, Mapping):
            return False
        if len(args) == 2:
            return all(_conforms(k, args[0]) and _conforms(v, args[1]) for k, v in value.items())
        return True
    if base in _SEQUENCES:
        if not isinstance(value, (list, tuple)):
            return False  # a string is a sequence of characters, never what a list argument means
        if base is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            return len(value) == len(args) and all(_conforms(v, a) for v, a in zip(value, args))
        return not args or all(_conforms(v, args[0]) for v in value)
    if base in (cabc.Callable, typing.Callable):
        return callable(value)
    if isinstance(base, type):
        try:
            return isinstance(value, base)
        except TypeError:
            return True
    return True  # a hint we do not understand is not a reason to refuse


def _describe(hint: Any) -> str:
    """``int | None`` -> "an integer or None", for messages."""
    if hint is None or hint is type(None):
        return "None"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        parts = [_describe(a) for a in args if a is not type(None)]
        parts += ["None"] if type(None) in args else []
        return ", ".join(parts[:-1]) + " or " + parts[-1] if len(parts) > 1 else parts[0]
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is typing.Annotated:
        return _describe(args[0])
    simple = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if hint in simple:
        return simple[hint]
    base = origin or hint
    if base in _MAPPINGS:
        return "a mapping"
    if base in _SEQUENCES:
        if args and args[0] in simple and args[0] is not bool:
            noun = {int: "integers", float: "numbers", str: "strings"}[args[0]]
            return f"a list of {noun}"
        return "a list"
    if isinstance(hint, type) and issubclass(hint, os.PathLike):
        return "a path"
    return f"a {getattr(base, '__name__', str(base))}"


def check_args(name: str, factory: Callable[..., Any], args: Mapping[str, Any]) -> None:
    """Raise InputError when an argument's value does not match the factory's type hint.

    ``bm25(threads='x')`` -> "bm25: threads must be an integer, got 'x'". Integers are accepted
    where a number is expected; booleans are not integers; a string is not a list.
    """
    hints = _hints(factory)
    for arg, value in args.items():
        hint = hints.get(arg)
        if hint is None or _conforms(value, hint):
            continue
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        try:
            default = inspect.signature(factory).parameters[arg].default
        except (KeyError, TypeError, ValueError):
            default = inspect.Parameter.empty
        fix = f"give {arg} {_describe(hint)}"
        if default is not inspect.Parameter.empty and default is not None and _conforms(default, hint):
            fix += f", e.g. {name}({arg}={default!r})"
        raise InputError(f"{name}: {arg} must be {_describe(hint)}, got {shown}", fix=fix)
