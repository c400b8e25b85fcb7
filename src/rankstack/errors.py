"""Typed errors: every failure a user can cause says where, what was seen, and how to fix it.

Why typed: callers (the CLI, the service, tests) decide how to present an error by its class, never
by parsing its text; the CLI prints ``str(error)`` on one line and exits 2 for any RankstackError.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from os import PathLike


class RankstackError(Exception):
    """Base of every error rankstack raises on purpose."""


class InputError(RankstackError, ValueError):
    """Bad input: names the file and line, what was seen and what is expected.

    ``str()`` reads ``path:line: problem (fix: ...)`` so it is greppable and editor-clickable.
    """

    def __init__(
        self,
        problem: str,
        *,
        path: str | PathLike[str] | None = None,
        line: int | None = None,
        fix: str | None = None,
    ) -> None:
        self.problem = problem
        self.path = None if path is None else str(path)
        self.line = line
        self.fix = fix
        super().__init__(self._render())

    def _render(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path + (f":{self.line}" if self.line is not None else "") + ": "
        elif self.line is not None:
            where = f"line {self.line}: "
        text = where + self.problem
        if self.fix:
            text += f" (fix: {self.fix})"
        return text


class UnknownComponentError(RankstackError, KeyError):
    """A spec named a component that is not registered; suggests the closest registered names."""

    def __init__(self, name: str, kind: str, known: Iterable[str]) -> None:
        self.name = name
        self.kind = kind
        self.known = sorted(known)
        close = difflib.get_close_matches(name, self.known, n=3, cutoff=0.5)
        text = f"unknown {kind} {name!r}"
        if close:
            text += f"; did you mean {' or '.join(repr(c) for c in close)}?"
        text += f" (registered: {', '.join(self.known) or 'none'})"
        self.message = text
        super().__init__(text)

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class MissingDependencyError(RankstackError, ImportError):
    """An optional backend is not installed; the message is the exact pip command that fixes it."""

    def __init__(self, module: str, extra: str, purpose: str = "") -> None:
        self.module = module
        self.extra = extra
        what = f" (needed for {purpose})" if purpose else ""
        super().__init__(
            f"optional dependency {module!r} is not installed{what}; "
            f"install it with: pip install 'rankstack[{extra}]'"
        )


def require(module: str, extra: str, purpose: str = ""):
    """Import an optional heavy module or raise MissingDependencyError with the pip hint."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name is not None and not module.startswith(exc.name.split(".")[0]):
            raise  # a real bug inside the module, not a missing install
        raise MissingDependencyError(module, extra, purpose) from exc
