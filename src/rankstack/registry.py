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

import importlib
import logging
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rankstack.errors import InputError, UnknownComponentError

__all__ = ["register", "build", "names", "Context", "parse_spec", "COMPONENT_MODULES"]

# Modules that define built-in components; imported on first lookup. Missing modules are skipped,
# so later work can add its module here before or after it exists.
COMPONENT_MODULES: list[str] = [
    "rankstack.retrieve.bm25",
    "rankstack.retrieve.dense",
    "rankstack.retrieve.fusion",
    "rankstack.retrieve.pq",
    "rankstack.encode.sentence_transformers",
    "rankstack.encode.onnx",
    "rankstack.rerank.cross_encoder",
    "rankstack.rerank.llm",
    "rankstack.ltr.gbdt",
    "rankstack.ltr.neural",
    "rankstack.ltr.features",
    "rankstack.losses",
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
    params = inspect.signature(factory).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if "context" in params:
        args["context"] = context or Context()
    unknown = [a for a in args if a not in params and not accepts_any]
    if unknown:
        allowed = [p for p in params if p != "context" and params[p].kind not in
                   (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
        import difflib

        hints = {u: difflib.get_close_matches(u, allowed, n=1) for u in unknown}
        hint = "; ".join(f"{u!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for u, h in hints.items())
        raise InputError(f"{name}: unknown argument {hint}", fix=f"{name} accepts {', '.join(allowed)}")
    return factory(**args)
