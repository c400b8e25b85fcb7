"""Lazy re-exports: a package names what it offers without importing heavy backends up front.

Why: ``import rankstack`` (and ``rankstack.rerank``, ``rankstack.train``) must not import torch,
faiss or lightgbm; the name's module is imported on first attribute access instead.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, table: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` resolving ``name`` from the module ``table[name]``."""

    def __getattr__(name: str) -> Any:
        if name in table:
            return getattr(importlib.import_module(table[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
