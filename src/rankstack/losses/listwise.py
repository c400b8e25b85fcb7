"""Listwise losses: the whole candidate list of a query is one training example.

Per-item ``weights`` multiply each item's term (its cross-entropy term, its likelihood step, or its
gain in a DCG), which is what propensity weighting and curricula need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rankstack.errors import InputError
from rankstack.losses._lazy import torch
from rankstack.losses._register import register_loss
from rankstack.losses._util import (
    check_k,
    check_positive,
    gains,
    ideal_dcg,
    masked_log_softmax,
    neg_fill,
    prepare,
    reduce_lists,
)

__all__ = ["listnet", "listmle", "plistmle", "approxndcg", "neuralndcg", "infonce"]

if TYPE_CHECKING:  # annotations only: torch loads when a loss first runs
    from torch import Tensor


@register_loss()
def listnet(scores: Tensor, labels: Tensor, mask: Tensor | None = None, weights: Tensor | None = None,
            temperature: float = 1.0, target: str = "linear") -> Tensor:
    """ListNet: cross-entropy between the label and score top-one distributions (softmax loss).

    Cao et al., "Learning to Rank: From Pairwise Approach to Listwise Approach" (ICML 2007).
    Score distribution ``softmax(s / temperature)`` over the real items. Target distribution:
    ``target="linear"`` (default) ``y / sum(y)`` -- with one positive this is exactly softmax
    cross-entropy, the loss of most neural rerankers (as in TF-Ranking's SoftmaxLoss);
    ``target="softmax"`` ``softmax(y)``, the top-one probability of the original paper.
    Labels: non-negative graded or binary relevance. A list whose labels are all 0 contributes 0.
    """
    check_positive("listnet", temperature=temperature)
    if target not in ("linear", "softmax"):
        raise InputError(f"listnet: target must be 'linear' or 'softmax', got {target!r}")
    scores, labels, mask, weights = prepare(scores, labels, mask, weights, "listnet")
    labels = labels.clamp(min=0)
    has_pos = ((labels > 0) & mask).any(-1)
    if target == "linear":
        p = labels / labels.sum(-1, keepdim=True).clamp(min=torch.finfo(labels.dtype).tiny)
    else:
        p = masked_log_softmax(labels, mask).exp() * mask
    log_q = masked_log_softmax(scores / temperature, mask)
    item = -p * log_q
    if weights is not None:
        item = item * weights
    per_list = torch.where(has_pos, item.sum(-1), torch.zeros_like(item[:, 0]))
    return reduce_lists(per_list)


def _sort_by_labels(scores: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """Permutation ordering real items by label descending, ties by current score descending."""
    big = torch.finfo(scores.dtype).max
    s_key = torch.where(mask, scores.detach(), torch.full_like(scores, -big))
    order = torch.sort(s_key, dim=-1, descending=True, stable=True).indices
    l_key = torch.where(mask, labels, torch.full_like(labels, -big)).gather(-1, order)
    order2 = torch.sort(l_key, dim=-1, descending=True, stable=True).indices
    return order.gather(-1, order2)


def _plackett_luce_terms(scores: Tensor, labels: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``-log P`` step of each position in the label-sorted list, with the sorted mask and order."""
    order = _sort_by_labels(scores, labels, mask)
    s = scores.gather(-1, order)
    m = mask.gather(-1, order)
    s_filled = torch.where(m, s, torch.full_like(s, neg_fill(s.dtype)))
    lse_suffix = torch.logcumsumexp(s_filled.flip(-1), dim=-1).flip(-1)
    step = torch.where(m, lse_suffix - s, torch.zeros_like(s))
    return step, m, order


@register_loss()
def listmle(scores: Tensor, labels: Tensor, mask: Tensor | None = None,
            weights: Tensor | None = None) -> Tensor:
    """ListMLE: negative Plackett-Luce log-likelihood of the ideal permutation.

    Xia et al., "Listwise Approach to Learning to Rank: Theory and Algorithm" (ICML 2008).
    ``sum_k [logsumexp_{m >= k} s_{pi(m)} - s_{pi(k)}]`` with ``pi`` sorting real items by label
    descending. Items with equal labels have no ideal order; ties are broken by the current
    (detached) scores, i.e. the most likely of the equivalent permutations, so the result does
    not depend on the input order. Labels: graded or binary; a list without a positive label
    contributes 0. Stable through ``logcumsumexp``.
    """
    scores, labels, mask, weights = prepare(scores, labels, mask, weights, "listmle")
    step, _, order = _plackett_luce_terms(scores, labels, mask)
    if weights is not None:
        step = step * weights.gather(-1, order)
    has_pos = ((labels > 0) & mask).any(-1)
    return reduce_lists(torch.where(has_pos, step.sum(-1), torch.zeros_like(step[:, 0])))


@register_loss()
def plistmle(scores: Tensor, labels: Tensor, mask: Tensor | None = None,
             weights: Tensor | None = None) -> Tensor:
    """Position-aware ListMLE: ListMLE whose likelihood steps are weighted by position.

    Lan, Zhu, Guo, Niu & Cheng, "Position-Aware ListMLE: A Sequential Learning Process for
    Ranking" (UAI 2014). Errors at the top matter more, so step ``k`` of a list of ``n`` real
    items is weighted ``alpha(k) = 2^(n-k) - 1`` (the weights TF-Ranking uses for P-ListMLE),
    here divided by ``2^(n-1)`` to keep the loss scale independent of ``n`` and finite for long
    lists: ``alpha(k) = 2^(1-k) - 2^(1-n)``. Ties and labels as :func:`listmle`.
    """
    scores, labels, mask, weights = prepare(scores, labels, mask, weights, "plistmle")
    step, m, order = _plackett_luce_terms(scores, labels, mask)
    n = mask.sum(-1, keepdim=True).to(scores.dtype)
    k = torch.arange(1, scores.shape[-1] + 1, device=scores.device, dtype=scores.dtype)
    alpha = torch.exp2(1 - k)[None, :] - torch.exp2(1 - n)
    step = step * torch.where(m, alpha, torch.zeros_like(alpha))
    if weights is not None:
        step = step * weights.gather(-1, order)
    has_pos = ((labels > 0) & mask).any(-1)
    return reduce_lists(torch.where(has_pos, step.sum(-1), torch.zeros_like(step[:, 0])))


@register_loss()
def approxndcg(scores: Tensor, labels: Tensor, mask: Tensor | None = None, weights: Tensor | None = None,
               temperature: float = 0.1) -> Tensor:
    """ApproxNDCG: ``1 - NDCG`` with each rank replaced by a sigmoid-smoothed rank.

    Qin, Liu & Li, "A General Approximation Framework for Direct Optimization of Information
    Retrieval Measures" (Information Retrieval 2010). ``rank_i ≈ 1 + sum_{j != i}
    sigmoid((s_j - s_i) / temperature)`` (``temperature = 1/alpha`` of the paper); as the
    temperature goes to 0 the loss tends to ``1 - NDCG`` of the score order. Gains ``2^y - 1``,
    each multiplied by its item weight. Labels: graded relevance ``>= 0``; a list without a
    relevant item (ideal DCG 0) contributes 0.
    """
    check_positive("approxndcg", temperature=temperature)
    scores, labels, mask, weights = prepare(scores, labels, mask, weights, "approxndcg")
    diff = (scores[:, None, :] - scores[:, :, None]) / temperature  # [b, i, j] = s_j - s_i
    both = mask[:, :, None] & mask[:, None, :]
    eye = torch.eye(scores.shape[-1], dtype=torch.bool, device=scores.device)[None]
    sig = torch.where(both & ~eye, torch.sigmoid(diff), torch.zeros_like(diff))
    approx_rank = 1.0 + sig.sum(-1)
    g = torch.where(mask, gains(labels), torch.zeros_like(labels))
    if weights is not None:
        g = g * weights
    dcg = (g / torch.log2(1.0 + approx_rank)).sum(-1)
    idcg = ideal_dcg(labels, mask)
    ok = idcg > 0
    per_list = torch.where(ok, 1.0 - dcg / idcg.clamp(min=torch.finfo(idcg.dtype).tiny),
                           torch.zeros_like(dcg))
    return reduce_lists(per_list)


def neural_sort(scores: Tensor, mask: Tensor, temperature: float, sinkhorn_iters: int = 50,
                tol: float = 1e-6) -> Tensor:
    """Relaxed permutation matrices ``[B, L, L]`` (row r = rank r+1, column = item).

    NeuralSort (Grover et al., "Stochastic Optimization of Sorting Networks via Continuous
    Relaxations", ICLR 2019) restricted to the ``n`` real items of each list, followed by Sinkhorn
    scaling so that it is doubly stochastic, as NeuralNDCG prescribes. Rows beyond ``n`` and
    columns of padded items are 0 in the result.
    """
    b, L = scores.shape
    n = mask.sum(-1, keepdim=True).to(scores.dtype)  # [B, 1]
    r = torch.arange(1, L + 1, device=scores.device, dtype=scores.dtype)[None, :]  # [1, L]
    valid_row = r <= n  # [B, L]
    both = mask[:, :, None] & mask[:, None, :]
    a_sum = torch.where(both, (scores[:, :, None] - scores[:, None, :]).abs(),
                        torch.zeros((), dtype=scores.dtype, device=scores.device)).sum(-1)  # [B, L(items)]
    scaling = (n + 1 - 2 * r)  # [B, L(rows)]
    logits = (scaling[:, :, None] * scores[:, None, :] - a_sum[:, None, :]) / temperature
    valid = valid_row[:, :, None] & mask[:, None, :]
    logits = torch.where(valid, logits, torch.full_like(logits, neg_fill(logits.dtype)))
    p = torch.softmax(logits, dim=-1)
    pad_block = (~valid_row)[:, :, None] & (~mask)[:, None, :]
    p = torch.where(valid, p, pad_block.to(p.dtype))
    eps = torch.finfo(p.dtype).tiny
    for _ in range(sinkhorn_iters):
        p = p / p.sum(-2, keepdim=True).clamp(min=eps)
        p = p / p.sum(-1, keepdim=True).clamp(min=eps)
        with torch.no_grad():
            if (p.sum(-2) - 1).abs().max() < tol:
                break
    return torch.where(valid, p, torch.zeros_like(p))


@register_loss()
def neuralndcg(scores: Tensor, labels: Tensor, mask: Tensor | None = None, weights: Tensor | None = None,
               temperature: float = 1.0, k: int | None = None, sinkhorn_iters: int = 50) -> Tensor:
    """NeuralNDCG: ``1 - NDCG@k`` computed on a NeuralSort-relaxed, Sinkhorn-scaled permutation.

    Pobrotyn & Białobrzeski, "NeuralNDCG: Direct Optimisation of a Ranking Metric via
    Differentiable Relaxation of Sorting" (2021). The quasi-sorted gains ``P_hat @ (2^y - 1)`` are
    discounted by ``1/log2(1 + rank)`` and normalised by the ideal DCG@k; as the temperature goes
    to 0, ``P_hat`` tends to the true sorting permutation and the loss to ``1 - NDCG@k``. Item
    weights multiply gains. Labels: graded relevance ``>= 0``; a list without a relevant item
    contributes 0. Cost ``O(B L^2 * sinkhorn_iters)``.
    """
    check_positive("neuralndcg", temperature=temperature)
    check_k("neuralndcg", k)
    if not (isinstance(sinkhorn_iters, int) and sinkhorn_iters >= 0):
        raise InputError(f"neuralndcg: sinkhorn_iters must be a non-negative integer, got {sinkhorn_iters!r}")
    scores, labels, mask, weights = prepare(scores, labels, mask, weights, "neuralndcg")
    p_hat = neural_sort(scores, mask, temperature, sinkhorn_iters)
    g = torch.where(mask, gains(labels), torch.zeros_like(labels))
    if weights is not None:
        g = g * weights
    sorted_gains = (p_hat @ g[:, :, None]).squeeze(-1)  # [B, ranks]
    r = torch.arange(1, scores.shape[-1] + 1, device=scores.device, dtype=scores.dtype)
    disc = 1.0 / torch.log2(1.0 + r)
    if k is not None:
        disc = torch.where(r <= k, disc, torch.zeros_like(disc))
    dcg = (sorted_gains * disc).sum(-1)
    idcg = ideal_dcg(labels, mask, k)
    ok = idcg > 0
    per_list = torch.where(ok, 1.0 - dcg / idcg.clamp(min=torch.finfo(idcg.dtype).tiny),
                           torch.zeros_like(dcg))
    return reduce_lists(per_list)


@register_loss()
def infonce(scores: Tensor, labels: Tensor, mask: Tensor | None = None, weights: Tensor | None = None,
            temperature: float = 0.05) -> Tensor:
    """InfoNCE: each positive against all negatives of its list, softmax at a temperature.

    Oord, Li & Vinyals, "Representation Learning with Contrastive Predictive Coding" (2018); the
    dense-retrieval form of Karpukhin et al., "Dense Passage Retrieval" (2020). For every positive
    ``p`` (``labels > 0``): ``-log(exp(s_p/t) / (exp(s_p/t) + sum_n exp(s_n/t)))`` over negatives
    ``n`` (``labels <= 0``), so several positives never compete with each other; per list the
    (weighted) mean over positives, a list without positive contributes 0. The default
    temperature 0.05 suits cosine similarities (sentence-transformers' scale 20); use 1 for logits.
    """
    check_positive("infonce", temperature=temperature)
    scores, labels, mask, weights = prepare(scores, labels, mask, weights, "infonce")
    pos = mask & (labels > 0)
    neg = mask & (labels <= 0)
    x = scores / temperature
    fill = torch.full_like(x, neg_fill(x.dtype))
    lse_neg = torch.logsumexp(torch.where(neg, x, fill), dim=-1, keepdim=True)
    term = torch.logaddexp(x, lse_neg) - x
    if weights is not None:
        term = term * weights
    term = torch.where(pos, term, torch.zeros_like(term))
    per_list = term.sum(-1) / pos.sum(-1).clamp(min=1)
    return reduce_lists(per_list)
