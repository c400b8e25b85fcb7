"""The ranking loss library: pure functions ``loss(scores, labels, mask, weights=None) -> scalar``.

Why one signature: a loss never owns a model, so the same function trains a cross-encoder, a
bi-encoder, an MLP over LETOR features and an unbiased learner (the same loss with propensity
``weights``). Shapes are ``[B, L]`` (B lists of L candidates); ``mask`` is True for real items and
False for padding, which never contributes. The batch loss is the sum of per-list losses divided by
``B``; a list on which a loss is undefined (e.g. no positive) contributes 0.

A loss is added by ONE decorated function in one of the implementation modules (``pointwise``,
``pairwise``, ``listwise``, ``distill``, or a new module listed in ``_MODULES`` below)::

    @register_loss()
    def my_loss(scores, labels, mask=None, weights=None, temperature: float = 1.0): ...

``@register_loss`` registers it with kind ``"loss"``, taking its hyper-parameters and their defaults
from the function's own signature; ``get_loss(name, **params)`` then returns a :class:`BoundLoss`,
and ``rankstack.losses.<name>`` is the function. Importing this package does not import torch: the
implementation modules use a lazy ``torch`` that loads when a loss first runs. The table below is
documentation (``available_losses()`` is the authority):

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
pgrank    REINFORCE on sampled Plackett-Luce nDCG@k (Gao 2023)   graded >= 0
========  =====================================================  ================================
"""

from __future__ import annotations

import importlib
from typing import Any

from rankstack.losses._register import IMPLEMENTATIONS, BoundLoss, register_loss
from rankstack.registry import build, names

# Implementation modules: importing them registers their losses (torch is not imported).
_MODULES = ("pointwise", "pairwise", "listwise", "distill", "flops", "pgrank")
for _module in _MODULES:
    importlib.import_module(f"rankstack.losses.{_module}")

__all__ = ["get_loss", "available_losses", "BoundLoss", "register_loss", *sorted(IMPLEMENTATIONS)]


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
    if name in IMPLEMENTATIONS:
        return IMPLEMENTATIONS[name]
    raise AttributeError(f"module 'rankstack.losses' has no attribute {name!r}")
