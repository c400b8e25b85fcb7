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
        close = suggest(name, self.known, n=3)
        text = f"unknown {kind} {name!r}"
        if close:
            text += f"; did you mean {' or '.join(repr(c) for c in close)}?"
        text += f" (registered: {', '.join(self.known) or 'none'})"
        self.message = text
        super().__init__(text)

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


# Characters people type for one another (l/1/I, O/0, -/_): substituting them costs half an edit,
# so ``kl`` is closer to ``k1`` than to ``k``.
_CONFUSABLE = {frozenset(p) for p in ("l1", "i1", "il", "o0", "-_", "s5", "z2")}


def _edit_distance(a: str, b: str) -> float:
    """Optimal-string-alignment distance (insert, delete, substitute, swap neighbours)."""
    prev2: list[float] = []
    prev = [float(j) for j in range(len(b) + 1)]
    for i, ca in enumerate(a, start=1):
        cur = [float(i)] + [0.0] * len(b)
        for j, cb in enumerate(b, start=1):
            sub = 0.0 if ca == cb else (0.5 if frozenset((ca, cb)) in _CONFUSABLE else 1.0)
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + sub)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def _affix(a: str, b: str) -> int:
    """Length of the common prefix plus the common suffix."""
    n = min(len(a), len(b))
    pre = next((i for i in range(n) if a[i] != b[i]), n)
    suf = next((i for i in range(n - pre) if a[-1 - i] != b[-1 - i]), n - pre)
    return pre + suf


def suggest(word: str, choices: Iterable[str], n: int = 1) -> list[str]:
    """The ``n`` choices closest to a misspelt ``word``, best first (empty if none is close).

    Why not plain ``difflib.get_close_matches``: its ratio favours short candidates (``kl`` -> ``k``
    over ``k1``). Candidates are ranked by edit distance (case-insensitive, look-alike characters
    cheap), then equal length, then longer common prefix+suffix, then difflib's ratio.
    """
    word = str(word)
    low = word.lower()
    scored = []
    for choice in dict.fromkeys(str(c) for c in choices):
        c = choice.lower()
        dist = _edit_distance(low, c)
        ratio = difflib.SequenceMatcher(None, low, c).ratio()
        close = dist <= max(1.0, len(low) / 3) or ratio >= 0.6 or (
            min(len(low), len(c)) >= 3 and (c.startswith(low) or low.startswith(c)))
        if close:
            scored.append((dist, abs(len(c) - len(low)), -_affix(low, c), -ratio, choice))
    return [s[-1] for s in sorted(scored)[:n]]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or an empty string."""
    close = suggest(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


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
