"""Pointwise losses: each item is scored against its own label, independently of the list.

Why keep them: they are the baseline every ranking paper compares against, they give calibrated
scores (BCE), and they are what a monoBERT-style cross-encoder is classically trained with
(Nogueira & Cho, "Passage Re-ranking with BERT", 2019).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rankstack.losses._lazy import F, torch
from rankstack.losses._register import register_loss
from rankstack.losses._util import prepare, reduce_lists

__all__ = ["bce", "mse"]

if TYPE_CHECKING:  # annotations only: torch loads when a loss first runs
    from torch import Tensor


def _pointwise_reduce(item_loss: Tensor, mask: Tensor, weights: Tensor | None) -> Tensor:
    if weights is not None:
        item_loss = item_loss * weights
    item_loss = torch.where(mask, item_loss, torch.zeros_like(item_loss))
    count = mask.sum(-1)
    per_list = item_loss.sum(-1) / count.clamp(min=1)
    return reduce_lists(per_list)


@register_loss()
def bce(scores: Tensor, labels: Tensor, mask: Tensor | None = None, weights: Tensor | None = None) -> Tensor:
    """Binary cross-entropy on logits (pointwise classification of relevance).

    Shapes: ``[B, L]``. Labels: binary relevance in {0, 1} or soft targets in [0, 1] (graded labels
    must be mapped first, e.g. ``labels > 0``). Per list: mean over real items of the (weighted) item
    loss, dividing by the count of real items, not the weight sum, so propensity weights stay
    unbiased; batch: mean over lists. Defined for lists without positives. Stable for any logit
    (``binary_cross_entropy_with_logits`` uses the log-sum-exp form).
    """
    scores, labels, mask, weights = prepare(scores, labels, mask, weights, "bce")
    item = F.binary_cross_entropy_with_logits(scores, labels.clamp(0, 1), reduction="none")
    return _pointwise_reduce(item, mask, weights)


@register_loss()
def mse(scores: Tensor, labels: Tensor, mask: Tensor | None = None, weights: Tensor | None = None) -> Tensor:
    """Squared error between score and (graded) label: pointwise regression.

    Shapes: ``[B, L]``. Labels: any real-valued target (graded relevance or teacher scores).
    Reduction as :func:`bce`. Defined for every list.
    """
    scores, labels, mask, weights = prepare(scores, labels, mask, weights, "mse")
    return _pointwise_reduce((scores - labels) ** 2, mask, weights)
