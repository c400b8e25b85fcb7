"""Typed recipe configs: defaults declared once, CLI flags and TOML keys derived from them.

Why: a workflow used to have its defaults written in three places (the CLI, the library config and
the experiment reader), and they drifted. A recipe now declares a frozen dataclass whose fields
carry their help text (:func:`option`); :func:`add_arguments` turns it into argparse flags,
:func:`from_args` and :func:`from_mapping` build the config from a command line or a TOML table with
the same names, and type errors name the flag or the file and key. Hand-written because argparse and
tomllib know nothing of dataclasses and the small libraries that do (e.g. simple-parsing) would own
our CLI's look; this is ~150 lines.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Union

from rankstack.errors import InputError

__all__ = ["option", "add_arguments", "from_args", "from_mapping", "to_dict", "field_names"]

MISSING = dataclasses.MISSING


def option(default: Any = MISSING, *, help: str, flag: str | None = None, short: str | None = None,
           choices: Sequence[Any] | None = None, metavar: str | None = None) -> Any:
    """A config field with its help text; no default makes it a required option."""
    meta = {"help": help, "flag": flag, "short": short, "choices": choices, "metavar": metavar}
    if isinstance(default, (list, dict, set)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def field_names(config_cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(config_cls)]


def _hints(config_cls: type) -> dict[str, Any]:
    return typing.get_type_hints(config_cls)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        if len(args) == 1:
            return args[0], optional
        return Union[tuple(args)], optional  # type: ignore[return-value]
    return tp, False


def _describe(tp: Any) -> str:
    tp, optional = _unwrap_optional(tp)
    origin = typing.get_origin(tp)
    if origin is Literal:
        text = "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    elif origin in (list, tuple, Sequence):
        inner = typing.get_args(tp)
        text = f"a list of {_describe(inner[0]) if inner else 'values'}"
    else:
        text = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
                Path: "a path"}.get(tp, getattr(tp, "__name__", str(tp)))
    return text + (" (or none)" if optional else "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` (from TOML or Python) against ``tp``; return it converted (str -> Path)."""
    base, optional = _unwrap_optional(tp)
    if value is None:
        if optional:
            return None
        raise InputError(f"{where} must be {_describe(tp)}, got none")
    origin = typing.get_origin(base)
    bad = InputError(f"{where} must be {_describe(tp)}, got {value!r}")
    if origin is Literal:
        if value not in typing.get_args(base):
            raise bad
        return value
    if origin in (list, tuple, Sequence):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise bad
        inner = typing.get_args(base)
        items = [_coerce(v, inner[0], f"{where}[{i}]") if inner else v for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (Union, types.UnionType):
        for alt in typing.get_args(base):
            try:
                return _coerce(value, alt, where)
            except InputError:
                continue
        raise bad
    if origin in (dict, Mapping) or base in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise bad
        return dict(value)
    if base is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if base is str:
        if not isinstance(value, str):
            raise bad
        return value
    if base is Path:
        if not isinstance(value, (str, Path)):
            raise bad
        return Path(value)
    if base is Any:
        return value
    raise TypeError(f"config fields of type {tp!r} are not supported")  # a programming error


def _cli_converter(tp: Any, flag: str):
    """An argparse ``type=`` callable: parses one token; 'none' means None for optional fields."""
    base, optional = _unwrap_optional(tp)

    def convert(text: str) -> Any:
        if optional and text.lower() == "none":
            return None
        target = base
        if typing.get_origin(base) is Literal:
            target = type(typing.get_args(base)[0])
        try:
            if target is int:
                return int(text)
            if target is float:
                return float(text)
            if target is Path:
                return Path(text)
            return text
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be {_describe(tp)}, got {text!r}") from None

    convert.__name__ = _describe(tp)
    return convert


def add_arguments(parser: argparse.ArgumentParser, config_cls: type, exclude: Sequence[str] = ()) -> None:
    """Add one flag per field of ``config_cls`` (except ``exclude``); defaults stay in the dataclass."""
    hints = _hints(config_cls)
    for f in dataclasses.fields(config_cls):
        if f.name in exclude:
            continue
        meta = f.metadata
        tp = hints[f.name]
        flag = meta.get("flag") or "--" + f.name.replace("_", "-")
        names = [flag] + ([meta["short"]] if meta.get("short") else [])
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS}
        required = f.default is MISSING and f.default_factory is MISSING
        if required:
            kwargs["required"] = True
            default_text = ""
        else:
            default = f.default if f.default is not MISSING else f.default_factory()
            default_text = f" (default: {default if not isinstance(default, Path) else str(default)})"
        kwargs["help"] = ((meta.get("help") or "") + default_text).replace("%", "%%")  # argparse formats help
        base, _ = _unwrap_optional(tp)
        origin = typing.get_origin(base)
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin in (list, tuple, Sequence):
            inner = typing.get_args(base)
            kwargs["nargs"] = "+"
            kwargs["type"] = _cli_converter(inner[0] if inner else str, flag)
        elif origin in (dict, Mapping) or base in (dict, Mapping):
            continue  # mappings are set from TOML or Python, never from flags
        else:
            kwargs["type"] = _cli_converter(tp, flag)
        choices = meta.get("choices")
        if choices is None and origin is Literal:
            choices = list(typing.get_args(base))
        if choices is not None:
            kwargs["choices"] = list(choices)
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        parser.add_argument(*names, **kwargs)


def from_args(config_cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """The config with every flag the user gave (and ``overrides``); all else keeps its default."""
    values = {name: getattr(args, name) for name in field_names(config_cls) if hasattr(args, name)}
    values.update(overrides)
    return from_mapping(config_cls, values, source="command line")


def from_mapping(config_cls: type, mapping: Mapping[str, Any], source: str = "config") -> Any:
    """Build ``config_cls`` from a TOML table or dict; unknown or mistyped keys name ``source``."""
    if not isinstance(mapping, Mapping):
        raise InputError(f"expected a table of settings, got {type(mapping).__name__}", path=source)
    hints = _hints(config_cls)
    known = field_names(config_cls)
    unknown = [k for k in mapping if k not in hints]
    if unknown:
        parts = []
        for key in unknown:
            close = difflib.get_close_matches(str(key), known, n=1)
            parts.append(repr(key) + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise InputError(f"unknown setting {', '.join(parts)}", path=source,
                         fix=f"accepted settings: {', '.join(known)}")
    try:
        values = {k: _coerce(v, hints[k], f"setting {k!r}") for k, v in mapping.items()}
    except InputError as exc:
        raise InputError(exc.problem, path=source, fix=exc.fix) from None
    missing = [f.name for f in dataclasses.fields(config_cls)
               if f.default is MISSING and f.default_factory is MISSING and f.name not in values]
    if missing:
        raise InputError(f"missing required setting(s) {', '.join(missing)}", path=source)
    try:
        return config_cls(**values)
    except InputError as exc:
        if exc.path is None:
            raise InputError(exc.problem, path=source, line=exc.line, fix=exc.fix) from None
        raise


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-able dict of a config (paths as strings, tuples as lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, Mapping):
            return {str(k): plain(x) for k, x in v.items()}
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return to_dict(v)
        return v

    return {f.name: plain(getattr(config, f.name)) for f in dataclasses.fields(config)}
