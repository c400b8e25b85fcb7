"""``torch`` and ``torch.nn.functional`` imported on first use, so loss modules can load (and register
their losses) without importing torch: ``import rankstack.losses`` stays light."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["torch", "F"]


class _LazyModule:
    """Stands for a module; the first attribute access imports it (later ones are a dict lookup)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: Any = None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


torch: Any = _LazyModule("torch")
F: Any = _LazyModule("torch.nn.functional")
