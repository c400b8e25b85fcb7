"""Pairwise losses: every pair of items with different labels in a list is one training signal.

Pairs are (i, j) with ``labels[i] > labels[j]`` and both items real. A pair's weight from the
optional per-item ``weights`` is the weight of the preferred item i: in unbiased learning to rank
the clicked (preferred) document carries the inverse propensity (Joachims et al., "Unbiased
Learning-to-Rank with Biased Feedback", 2017). Memory is ``O(B L^2)``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rankstack.errors import InputError
from rankstack.losses._lazy import F, torch
from rankstack.losses._register import register_loss
from rankstack.losses._util import (
    check_k,
    check_positive,
    gains,
    ideal_dcg,
    inverse_log_discount,
    pair_mask,
    prepare,
    ranks_from_scores,
    reduce_lists,
)

__all__ = ["ranknet", "hinge", "lambdarank", "lambdaloss", "auc"]

if TYPE_CHECKING:  # annotations only: torch loads when a loss first runs
    from torch import Tensor


def _diffs(scores: Tensor) -> Tensor:
    return scores[:, :, None] - scores[:, None, :]


def _pair_weights(weights: Tensor | None, like: Tensor) -> Tensor:
    if weights is None:
        return torch.ones_like(like)
    return weights[:, :, None].expand_as(like)


def _mean_over_pairs(pair_loss: Tensor, pairs: Tensor) -> Tensor:
    pair_loss = torch.where(pairs, pair_loss, torch.zeros_like(pair_loss))
    count = pairs.sum((-1, -2))
    per_list = pair_loss.sum((-1, -2)) / count.clamp(min=1)
    return reduce_lists(per_list)


@register_loss()
def ranknet(scores: Tensor, labels: Tensor, mask: Tensor | None = None, weights: Tensor | None = None,
            sigma: float = 1.0) -> Tensor:
    """RankNet: logistic loss on score differences of correctly-ordered pairs.

    Burges et al., "Learning to Rank using Gradient Descent" (ICML 2005). Per pair
    ``log(1 + exp(-sigma (s_i - s_j)))`` for ``labels[i] > labels[j]``; per list the mean over pairs;
    a list without any such pair (all labels equal) contributes 0. Labels: binary or graded.
    Computed with ``softplus`` so it is finite for any score difference.
    """
    check_positive("ranknet", sigma=sigma)
    scores, labels, mask, weights = prepare(scores, labels, mask, weights, "ranknet")
    pairs = pair_mask(labels, mask)
    diff = _diffs(scores)
    loss = F.softplus(-sigma * diff) * _pair_weights(weights, diff)
    return _mean_over_pairs(loss, pairs)


@register_loss()
def hinge(scores: Tensor, labels: Tensor, mask: Tensor | None = None, weights: Tensor | None = None,
          margin: float = 1.0) -> Tensor:
    """Pairwise hinge (RankSVM) loss ``max(0, margin - (s_i - s_j))`` for ``labels[i] > labels[j]``.

    Herbrich et al., "Large Margin Rank Boundaries for Ordinal Regression" (2000); Joachims,
    "Optimizing Search Engines using Clickthrough Data" (KDD 2002). Per list the mean over pairs;
    lists without pairs contribute 0. Labels: binary or graded. ``margin >= 0``.
    """
    if not (isinstance(margin, (int, float)) and margin >= 0):
        raise InputError(f"hinge: margin must be a non-negative number, got {margin!r}")
    scores, labels, mask, weights = prepare(scores, labels, mask, weights, "hinge")
    pairs = pair_mask(labels, mask)
    diff = _diffs(scores)
    loss = F.relu(margin - diff) * _pair_weights(weights, diff)
    return _mean_over_pairs(loss, pairs)


def _normalised_gains(labels: Tensor, mask: Tensor, k: int | None = None) -> tuple[Tensor, Tensor]:
    idcg = ideal_dcg(labels, mask, k)
    g = torch.where(mask, gains(labels), torch.zeros_like(labels))
    return g / idcg.clamp(min=torch.finfo(labels.dtype).tiny)[:, None], idcg > 0


@register_loss()
def lambdarank(scores: Tensor, labels: Tensor, mask: Tensor | None = None, weights: Tensor | None = None,
               sigma: float = 1.0, k: int | None = None) -> Tensor:
    """LambdaRank: RankNet pairs weighted by ``|ΔNDCG|`` of swapping the two items.

    Burges, Ragno & Le, "Learning to Rank with Nonsmooth Cost Functions" (NIPS 2006); Burges,
    "From RankNet to LambdaRank to LambdaMART: An Overview" (2010). Per list
    ``sum_{y_i > y_j} |ΔNDCG@k_ij| * log(1 + exp(-sigma (s_i - s_j)))`` where ranks come from the
    current (detached) scores, gains are ``2^y - 1`` and ``|ΔNDCG|`` is normalised by the ideal DCG,
    so the gradient with respect to ``s`` is exactly the lambda of the paper. Labels: graded
    relevance ``>= 0``. A list with no relevant item (ideal DCG 0) contributes 0.
    """
    check_positive("lambdarank", sigma=sigma)
    check_k("lambdarank", k)
    scores, labels, mask, weights = prepare(scores, labels, mask, weights, "lambdarank")
    g, has_rel = _normalised_gains(labels, mask, k)
    disc = inverse_log_discount(ranks_from_scores(scores, mask), k, scores.dtype)
    delta = (g[:, :, None] - g[:, None, :]).abs() * (disc[:, :, None] - disc[:, None, :]).abs()
    pairs = pair_mask(labels, mask) & has_rel[:, None, None]
    diff = _diffs(scores)
    loss = delta * F.softplus(-sigma * diff) * _pair_weights(weights, diff)
    loss = torch.where(pairs, loss, torch.zeros_like(loss))
    return reduce_lists(loss.sum((-1, -2)))


@register_loss()
def lambdaloss(scores: Tensor, labels: Tensor, mask: Tensor | None = None, weights: Tensor | None = None,
               sigma: float = 1.0, mu: float = 10.0) -> Tensor:
    """LambdaLoss NDCG-Loss2++: a bound on NDCG that, unlike LambdaRank, is a proper loss.

    Wang, Li, Golbandi, Bendersky & Najork, "The LambdaLoss Framework for Ranking Metric
    Optimization" (CIKM 2018), eq. for NDCG-Loss2++ with the hard-sort (Dirac) rank distribution:

    ``-sum_{y_i > y_j} (mu * delta_ij + rho_ij) |G_i - G_j| log2 sigmoid(sigma (s_i - s_j))``

    with ``G = (2^y - 1) / IDCG``, ranks ``r`` from the current detached scores,
    ``D(r) = log2(1 + r)``, ``delta_ij = |1/D(|r_i-r_j|) - 1/D(|r_i-r_j|+1)|`` (NDCG-Loss2) and
    ``rho_ij = |1/D(r_i) - 1/D(r_j)|`` (the LambdaRank term). Summed per list, averaged over lists.
    Labels: graded relevance ``>= 0``; a list without a relevant item contributes 0.
    """
    check_positive("lambdaloss", sigma=sigma)
    if not (isinstance(mu, (int, float)) and mu >= 0):
        raise InputError(f"lambdaloss: mu must be a non-negative number, got {mu!r}")
    scores, labels, mask, weights = prepare(scores, labels, mask, weights, "lambdaloss")
    g, has_rel = _normalised_gains(labels, mask)
    ranks = ranks_from_scores(scores, mask).to(scores.dtype)
    inv_d = 1.0 / torch.log2(1.0 + ranks)
    rho = (inv_d[:, :, None] - inv_d[:, None, :]).abs()
    gap = (ranks[:, :, None] - ranks[:, None, :]).abs().clamp(min=1)
    delta = (1.0 / torch.log2(1.0 + gap) - 1.0 / torch.log2(2.0 + gap)).abs()
    weight = (mu * delta + rho) * (g[:, :, None] - g[:, None, :]).abs()
    pairs = pair_mask(labels, mask) & has_rel[:, None, None]
    diff = _diffs(scores)
    # -log2 sigmoid(x) = softplus(-x) / ln 2, finite for every x.
    loss = weight * F.softplus(-sigma * diff) / math.log(2.0) * _pair_weights(weights, diff)
    loss = torch.where(pairs, loss, torch.zeros_like(loss))
    return reduce_lists(loss.sum((-1, -2)))


@register_loss()
def auc(scores: Tensor, labels: Tensor, mask: Tensor | None = None, weights: Tensor | None = None,
        sigma: float = 1.0, scope: str = "list") -> Tensor:
    """Smooth 1-AUC surrogate: logistic loss over every (positive, negative) pair.

    After Sheikholeslami et al., "Optimizing What Matters: AUC-Driven Learning for Robust Neural
    Retrieval" (2025), whose MW loss maximises the Mann-Whitney U statistic (= AUC) by minimising
    binary cross-entropy on score differences of positive-negative pairs. Implemented from the
    paper's abstract: ``mean_{p, n} w_p * log(1 + exp(-sigma (s_p - s_n)))`` with positives
    ``labels > 0`` and negatives ``labels <= 0``; the indicator ``[s_p > s_n]`` of AUC is replaced by
    ``sigmoid`` and its log taken, which upper-bounds ``(1 - AUC) * ln 2``.

    ``scope="list"`` pairs items of the same list (mean over pairs per list, lists without a
    positive or without a negative contribute 0; with binary labels this equals :func:`ranknet`).
    ``scope="batch"`` pairs every positive with every negative of the whole batch, i.e. across
    queries -- the global AUC that matters for thresholding scores; the result is the mean over all
    such pairs (0 if there are none).
    """
    check_positive("auc", sigma=sigma)
    if scope not in ("list", "batch"):
        raise InputError(f"auc: scope must be 'list' or 'batch', got {scope!r}")
    scores, labels, mask, weights = prepare(scores, labels, mask, weights, "auc")
    pos = mask & (labels > 0)
    neg = mask & (labels <= 0)
    if scope == "list":
        pairs = pos[:, :, None] & neg[:, None, :]
        diff = _diffs(scores)
        loss = F.softplus(-sigma * diff) * _pair_weights(weights, diff)
        return _mean_over_pairs(loss, pairs)
    s, p, n = scores.reshape(-1), pos.reshape(-1), neg.reshape(-1)
    w = weights.reshape(-1) if weights is not None else torch.ones_like(s)
    pairs = p[:, None] & n[None, :]
    loss = F.softplus(-sigma * (s[:, None] - s[None, :])) * w[:, None]
    loss = torch.where(pairs, loss, torch.zeros_like(loss))
    return loss.sum() / pairs.sum().clamp(min=1)
