"""``@register_loss``: the one decorator that adds a loss, and :class:`BoundLoss`.

Adding a loss is one decorated function in any loss module::

    @register_loss()
    def my_loss(scores, labels, mask=None, weights=None, temperature: float = 1.0) -> Tensor: ...

The decorator registers a factory (kind ``"loss"``) whose signature is the function's own
hyper-parameters (everything after ``scores, labels, mask, weights``), so ``get_loss("my_loss",
temperature=0.5)``, spec strings, argument checks and did-you-mean all work with no other edit,
and the defaults are written once.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from rankstack.registry import register

__all__ = ["register_loss", "BoundLoss", "IMPLEMENTATIONS", "LOSS_ARGS"]

#: loss name -> implementation function
IMPLEMENTATIONS: dict[str, Callable[..., Any]] = {}
#: the arguments every loss takes first; the rest are its hyper-parameters
LOSS_ARGS = ("scores", "labels", "mask", "weights")


class BoundLoss:
    """A loss with its hyper-parameters bound: ``loss(scores, labels, mask, weights=None)``.

    Keeps ``name`` and ``params`` so a trainer can record exactly which loss it optimised.
    """

    def __init__(self, name: str, **params: Any) -> None:
        self.name = name
        self.params = dict(params)
        self._fn = IMPLEMENTATIONS[name]

    def __call__(self, scores: Any, labels: Any, mask: Any = None, weights: Any = None) -> Any:
        return self._fn(scores, labels, mask, weights, **self.params)

    def spec(self) -> dict[str, Any]:
        """The ``{"name", "args"}`` spec that rebuilds this loss with ``get_loss``."""
        return {"name": self.name, "args": dict(self.params)}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"BoundLoss({self.name}{', ' if args else ''}{args})"


def _bound(name: str, **params: Any) -> BoundLoss:
    loss = BoundLoss(name, **params)
    # Validate hyper-parameters now (each implementation checks them) rather than mid-training.
    import torch

    z = torch.zeros(1, 2)
    loss(z, z, torch.ones(1, 2, dtype=torch.bool))
    return loss


def register_loss(name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated implementation as loss ``name`` (default: the function's name)."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        loss_name = name or fn.__name__
        sig = inspect.signature(fn)
        first = list(sig.parameters)[:len(LOSS_ARGS)]
        if tuple(first) != LOSS_ARGS[:len(first)] or len(first) < 2:
            raise TypeError(f"loss {loss_name!r} must start with (scores, labels, mask=None, weights=None)")
        hyper = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in sig.parameters.values()
                 if p.name not in LOSS_ARGS]

        def factory(**params: Any) -> BoundLoss:
            return _bound(loss_name, **params)

        factory.__signature__ = inspect.Signature(hyper)  # what registry.build checks arguments against
        factory.__name__ = loss_name
        factory.__qualname__ = f"register_loss.{loss_name}"
        factory.__module__ = fn.__module__
        factory.__doc__ = fn.__doc__
        IMPLEMENTATIONS[loss_name] = fn
        register(loss_name, kind="loss")(factory)
        return fn

    return decorate
