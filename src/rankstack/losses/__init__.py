"""The ranking loss library: pure functions ``loss(scores, labels, mask, weights=None) -> scalar``.

Why one signature: a loss never owns a model, so the same function trains a cross-encoder, a
bi-encoder, an MLP over LETOR features and an unbiased learner (the same loss with propensity
``weights``). Shapes are ``[B, L]`` (B lists of L candidates); ``mask`` is True for real items and
False for padding, which never contributes. The batch loss is the sum of per-list losses divided by
``B``; a list on which a loss is undefined (e.g. no positive) contributes 0.

Every loss is registered with kind ``"loss"``; ``get_loss(name, **params)`` returns a
:class:`BoundLoss` with its hyper-parameters bound. This module does not import torch: the
implementations (``pointwise``, ``pairwise``, ``listwise``, ``distill``) load when a loss is built
or when one of their functions is accessed as ``rankstack.losses.<name>``.

========  =====================================================  ================================
name      what                                                   labels
========  =====================================================  ================================
bce       pointwise binary cross-entropy on logits               binary / soft in [0, 1]
mse       pointwise squared error                                graded / any real
ranknet   logistic loss on pairs (Burges et al. 2005)            graded
hinge     pairwise hinge, ``margin`` (RankSVM)                   graded
lambdarank  RankNet pairs weighted by abs(ΔNDCG) (Burges 2006)   graded >= 0
lambdaloss  NDCG-Loss2++ (Wang et al. 2018)                      graded >= 0
listnet   softmax cross-entropy (Cao et al. 2007)                graded >= 0
listmle   Plackett-Luce likelihood (Xia et al. 2008)             graded
plistmle  position-aware ListMLE (Lan et al. 2014)               graded
approxndcg  smooth-rank 1-NDCG (Qin et al. 2010)                 graded >= 0
neuralndcg  NeuralSort + Sinkhorn 1-NDCG (Pobrotyn 2021)         graded >= 0
auc       logistic 1-AUC surrogate (MW loss, 2025)               positive = label > 0
infonce   contrastive, ``temperature``                           positive = label > 0
margin_mse  distillation of score margins (Hofstätter 2020)      teacher scores
listwise_kl KL(teacher softmax || student softmax)               teacher scores
========  =====================================================  ================================
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from rankstack.registry import build, names, register

__all__ = ["get_loss", "available_losses", "BoundLoss", "LOSS_MODULES",
           "bce", "mse", "ranknet", "hinge", "lambdarank", "lambdaloss", "listnet", "listmle",
           "plistmle", "approxndcg", "neuralndcg", "auc", "infonce", "margin_mse", "listwise_kl"]

# loss name -> implementation module (relative to rankstack.losses)
LOSS_MODULES: dict[str, str] = {
    "bce": "pointwise", "mse": "pointwise",
    "ranknet": "pairwise", "hinge": "pairwise", "lambdarank": "pairwise", "lambdaloss": "pairwise",
    "auc": "pairwise",
    "listnet": "listwise", "listmle": "listwise", "plistmle": "listwise", "approxndcg": "listwise",
    "neuralndcg": "listwise", "infonce": "listwise",
    "margin_mse": "distill", "listwise_kl": "distill",
}


def _impl(name: str) -> Callable[..., Any]:
    module = importlib.import_module(f"rankstack.losses.{LOSS_MODULES[name]}")
    return getattr(module, name)


class BoundLoss:
    """A loss with its hyper-parameters bound: ``loss(scores, labels, mask, weights=None)``.

    Keeps ``name`` and ``params`` so a trainer can record exactly which loss it optimised.
    """

    def __init__(self, name: str, **params: Any) -> None:
        self.name = name
        self.params = dict(params)
        self._fn = _impl(name)

    def __call__(self, scores: Any, labels: Any, mask: Any = None, weights: Any = None) -> Any:
        return self._fn(scores, labels, mask, weights, **self.params)

    def spec(self) -> dict[str, Any]:
        """The ``{"name", "args"}`` spec that rebuilds this loss with :func:`get_loss`."""
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


# Thin factories: their signatures are what ``build`` validates spec arguments against, so they
# repeat the implementations' defaults (a unit test keeps the two in sync).
@register("bce", kind="loss")
def _bce() -> BoundLoss:
    return _bound("bce")


@register("mse", kind="loss")
def _mse() -> BoundLoss:
    return _bound("mse")


@register("ranknet", kind="loss")
def _ranknet(sigma: float = 1.0) -> BoundLoss:
    return _bound("ranknet", sigma=sigma)


@register("hinge", kind="loss")
def _hinge(margin: float = 1.0) -> BoundLoss:
    return _bound("hinge", margin=margin)


@register("lambdarank", kind="loss")
def _lambdarank(sigma: float = 1.0, k: int | None = None) -> BoundLoss:
    return _bound("lambdarank", sigma=sigma, k=k)


@register("lambdaloss", kind="loss")
def _lambdaloss(sigma: float = 1.0, mu: float = 10.0) -> BoundLoss:
    return _bound("lambdaloss", sigma=sigma, mu=mu)


@register("auc", kind="loss")
def _auc(sigma: float = 1.0, scope: str = "list") -> BoundLoss:
    return _bound("auc", sigma=sigma, scope=scope)


@register("listnet", kind="loss")
def _listnet(temperature: float = 1.0, target: str = "linear") -> BoundLoss:
    return _bound("listnet", temperature=temperature, target=target)


@register("listmle", kind="loss")
def _listmle() -> BoundLoss:
    return _bound("listmle")


@register("plistmle", kind="loss")
def _plistmle() -> BoundLoss:
    return _bound("plistmle")


@register("approxndcg", kind="loss")
def _approxndcg(temperature: float = 0.1) -> BoundLoss:
    return _bound("approxndcg", temperature=temperature)


@register("neuralndcg", kind="loss")
def _neuralndcg(temperature: float = 1.0, k: int | None = None, sinkhorn_iters: int = 50) -> BoundLoss:
    return _bound("neuralndcg", temperature=temperature, k=k, sinkhorn_iters=sinkhorn_iters)


@register("infonce", kind="loss")
def _infonce(temperature: float = 0.05) -> BoundLoss:
    return _bound("infonce", temperature=temperature)


@register("margin_mse", kind="loss")
def _margin_mse(pairs: str = "first") -> BoundLoss:
    return _bound("margin_mse", pairs=pairs)


@register("listwise_kl", kind="loss")
def _listwise_kl(temperature: float = 1.0) -> BoundLoss:
    return _bound("listwise_kl", temperature=temperature)


def get_loss(spec: Any, **params: Any) -> BoundLoss:
    """Build a loss by name or ``{"name", "args"}`` spec, e.g. ``get_loss("listnet", temperature=0.5)``.

    Unknown names raise UnknownComponentError with suggestions; unknown or invalid parameters raise
    InputError. A :class:`BoundLoss` or any callable is returned unchanged (no params allowed).
    """
    if callable(spec) and not isinstance(spec, str):
        if params:
            from rankstack.errors import InputError

            raise InputError("parameters can only be given with a loss name",
                             fix="pass get_loss(name, **params) or bind them yourself")
        return spec
    return build(spec, kind="loss", **params)


def available_losses() -> list[str]:
    """Names of every registered loss."""
    return names("loss")


def __getattr__(name: str) -> Any:
    if name in LOSS_MODULES:
        return _impl(name)
    raise AttributeError(f"module 'rankstack.losses' has no attribute {name!r}")
