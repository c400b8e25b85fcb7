"""The Stage protocol and its two operators: ``a >> b`` (then) and ``a % k`` (keep the top k).

Why only two operators: pipelines stay readable as expressions (``bm25 % 100 >> reranker``) and
everything else (fusion, caching) is a named function returning a Stage, so there is one way to
compose anything.

A Stage maps Queries (a first stage) or a Run (a reranker) to a Run. A Run carries its Queries so
that rerankers can read query texts.
"""

from __future__ import annotations

from typing import Union

from rankstack.errors import InputError
from rankstack.types import Queries, Run

StageInput = Union[Queries, Run]

__all__ = ["Stage", "Then", "Cutoff", "FunctionStage", "StageInput", "queries_of"]


def queries_of(inp: StageInput, stage: str = "stage") -> Queries:
    """The query texts of a stage's input, or a clear error when a run arrives without them."""
    if isinstance(inp, Queries):
        return inp
    if isinstance(inp, Run):
        if inp.queries is None:
            raise InputError(
                f"{stage} needs query texts but received a Run without queries",
                fix="attach them with run.with_queries(queries) or start the pipeline from Queries",
            )
        return inp.queries
    raise InputError(f"{stage} takes Queries or a Run, got {type(inp).__name__}")


class Stage:
    """Base class: subclasses implement ``transform``; ``__call__`` adds checks and naming."""

    name: str = "stage"

    def transform(self, inp: StageInput) -> Run:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, inp: StageInput) -> Run:
        if not isinstance(inp, (Queries, Run)):
            raise InputError(f"{self!r} takes Queries or a Run, got {type(inp).__name__}")
        out = self.transform(inp)
        if out.queries is None:
            q = inp if isinstance(inp, Queries) else inp.queries
            if q is not None:
                out = out.with_queries(q)
        return out

    def at_least(self, k: int) -> Stage:
        """A stage that returns at least ``k`` documents per query where it can (``% k`` asks this).

        Why: a retriever has its own default depth (BM25 and dense: 1000); without this,
        ``bm25 % 2000`` silently returned 1000. Retrievers override it to return a copy with a
        deeper ``k`` (never mutating ``self``); stages that cannot add documents (rerankers) keep
        the default, which returns ``self``.
        """
        return self

    def __rshift__(self, other: Stage) -> Stage:
        if not isinstance(other, Stage):
            return NotImplemented
        return Then(self, other)

    def __mod__(self, k: int) -> Stage:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InputError(f"'% k' needs a positive integer, got {k!r}")
        return Cutoff(self, k)

    def __repr__(self) -> str:
        return self.name


class Then(Stage):
    """``first >> second``: feed the run of ``first`` to ``second``."""

    def __init__(self, first: Stage, second: Stage) -> None:
        self.first, self.second = first, second
        self.name = f"{first!r} >> {second!r}"

    def transform(self, inp: StageInput) -> Run:
        return self.second(self.first(inp))

    def at_least(self, k: int) -> Stage:
        first, second = self.first.at_least(k), self.second.at_least(k)
        if first is self.first and second is self.second:
            return self
        out = Then(first, second)
        out.name = self.name
        return out


class Cutoff(Stage):
    """``stage % k``: keep the top ``k`` documents per query of ``stage``'s output."""

    def __init__(self, inner: Stage, k: int) -> None:
        self.inner, self.k = inner.at_least(k), k
        inner_repr = repr(inner)
        if isinstance(inner, Then):
            inner_repr = f"({inner_repr})"
        self.name = f"{inner_repr} % {k}"

    def transform(self, inp: StageInput) -> Run:
        return self.inner(inp).top_k(self.k)

    def at_least(self, k: int) -> Stage:
        return self  # the user's own cut-off wins: `(a % 10) % 100` keeps 10


class FunctionStage(Stage):
    """Wrap a plain function ``f(inp) -> Run`` as a Stage (handy in notebooks and tests)."""

    def __init__(self, fn, name: str | None = None) -> None:
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "function")

    def transform(self, inp: StageInput) -> Run:
        return self.fn(inp)
