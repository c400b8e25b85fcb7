"""Distillation losses: the labels are a teacher's scores (floats), not relevance judgements."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rankstack.errors import InputError
from rankstack.losses._lazy import torch
from rankstack.losses._register import register_loss
from rankstack.losses._util import check_positive, masked_log_softmax, prepare, reduce_lists

__all__ = ["margin_mse", "listwise_kl"]

if TYPE_CHECKING:  # annotations only: torch loads when a loss first runs
    from torch import Tensor


@register_loss()
def margin_mse(scores: Tensor, labels: Tensor, mask: Tensor | None = None, weights: Tensor | None = None,
               pairs: str = "first") -> Tensor:
    """Margin-MSE: match the student's score margins to the teacher's.

    Hofstätter et al., "Improving Efficient Neural Ranking Models with Cross-Architecture
    Knowledge Distillation" (2020): ``((s_pos - s_neg) - (t_pos - t_neg))^2``; only margins are
    matched, so student and teacher may live on different score scales. ``labels`` are the teacher
    scores. ``pairs="first"``: the first real item of each list is the positive and every other
    real item a negative (the paper's triples, with several negatives); ``pairs="all"``: every
    unordered pair of real items. A pair's weight is the product of its items' weights. Per list
    the mean over pairs; a list with fewer than two real items contributes 0.
    """
    if pairs not in ("first", "all"):
        raise InputError(f"margin_mse: pairs must be 'first' or 'all', got {pairs!r}")
    scores, labels, mask, weights = prepare(scores, labels, mask, weights, "margin_mse")
    ds = scores[:, :, None] - scores[:, None, :]
    dt = labels[:, :, None] - labels[:, None, :]
    sq = (ds - dt) ** 2
    if weights is not None:
        sq = sq * weights[:, :, None] * weights[:, None, :]
    both = mask[:, :, None] & mask[:, None, :]
    L = scores.shape[-1]
    if pairs == "first":
        first = mask.to(torch.int8).argmax(-1)  # index of the first real item
        is_first = torch.arange(L, device=scores.device)[None, :] == first[:, None]
        sel = both & is_first[:, :, None] & ~is_first[:, None, :]
    else:
        upper = torch.ones(L, L, dtype=torch.bool, device=scores.device).triu(1)[None]
        sel = both & upper
    sq = torch.where(sel, sq, torch.zeros_like(sq))
    per_list = sq.sum((-1, -2)) / sel.sum((-1, -2)).clamp(min=1)
    return reduce_lists(per_list)


@register_loss()
def listwise_kl(scores: Tensor, labels: Tensor, mask: Tensor | None = None, weights: Tensor | None = None,
                temperature: float = 1.0) -> Tensor:
    """Listwise distillation: ``KL(softmax(t / T) || softmax(s / T))`` over each list's real items.

    Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network" (2015), applied to a
    candidate list as in listwise reranker distillation. ``labels`` are the teacher scores. Item
    weights multiply each item's KL term. The loss is not rescaled by ``T^2``. A list with no real
    item contributes 0.
    """
    check_positive("listwise_kl", temperature=temperature)
    scores, labels, mask, weights = prepare(scores, labels, mask, weights, "listwise_kl")
    log_p = masked_log_softmax(labels / temperature, mask)
    log_q = masked_log_softmax(scores / temperature, mask)
    item = log_p.exp() * (log_p - log_q)
    if weights is not None:
        item = item * weights
    item = torch.where(mask, item, torch.zeros_like(item))
    return reduce_lists(item.sum(-1))
