"""Shared helpers for the loss library: input checks, masks, gains, discounts, reductions.

Conventions every loss follows (see ``rankstack.losses``):

* ``scores``, ``labels``, ``mask``, ``weights`` are ``[B, L]``; ``mask`` is True for real items.
* Padded items never contribute: their scores/labels are replaced before any arithmetic, so even
  ``inf``/``NaN`` padding cannot leak into the loss or the gradients of real items.
* The batch loss is ``sum(per-list loss) / B``: every list counts in the denominator, and a list on
  which a loss is undefined (e.g. no positive) contributes 0. Dividing by ``B`` rather than by the
  number of "useful" lists keeps inverse-propensity-weighted estimates unbiased (an IPS estimate
  averages over all queries, including those without clicks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rankstack.errors import InputError
from rankstack.losses._lazy import torch

if TYPE_CHECKING:  # annotations only: torch loads when a loss first runs
    from torch import Tensor


def prepare(scores: Tensor, labels: Tensor, mask: Tensor | None, weights: Tensor | None = None,
            name: str = "loss") -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """Validate shapes and return float scores/labels/weights and a bool mask, padding neutralised."""
    if not isinstance(scores, torch.Tensor):
        raise InputError(f"{name}: scores must be a torch.Tensor, got {type(scores).__name__}")
    if scores.dim() != 2:
        raise InputError(f"{name}: scores must have shape [B, L], got {tuple(scores.shape)}",
                         fix="add a batch dimension with scores.unsqueeze(0)")
    labels = torch.as_tensor(labels, device=scores.device)
    if labels.shape != scores.shape:
        raise InputError(f"{name}: labels shape {tuple(labels.shape)} differs from scores "
                         f"shape {tuple(scores.shape)}")
    if mask is None:
        mask = torch.ones(scores.shape, dtype=torch.bool, device=scores.device)
    else:
        mask = torch.as_tensor(mask, device=scores.device)
        if mask.shape != scores.shape:
            raise InputError(f"{name}: mask shape {tuple(mask.shape)} differs from scores "
                             f"shape {tuple(scores.shape)}")
        mask = mask.bool()
    # Losses are computed in fp32 (or fp64) even when the model runs under bf16 autocast.
    dtype = scores.dtype if scores.dtype in (torch.float32, torch.float64) else torch.float32
    scores = torch.where(mask, scores.to(dtype), torch.zeros((), dtype=dtype, device=scores.device))
    labels = torch.where(mask, labels.to(dtype), torch.zeros((), dtype=dtype, device=scores.device))
    if weights is not None:
        weights = torch.as_tensor(weights, device=scores.device)
        if weights.shape != scores.shape:
            raise InputError(f"{name}: weights shape {tuple(weights.shape)} differs from scores "
                             f"shape {tuple(scores.shape)}")
        weights = torch.where(mask, weights.to(dtype), torch.zeros((), dtype=dtype, device=scores.device))
    return scores, labels, mask, weights


def reduce_lists(per_list: Tensor) -> Tensor:
    """Batch loss: mean over all ``B`` lists (undefined lists must already be 0)."""
    if per_list.numel() == 0:
        return per_list.sum()
    return per_list.sum() / per_list.shape[0]


def pair_mask(labels: Tensor, mask: Tensor) -> Tensor:
    """``[B, L, L]`` True where items i and j are both real and ``labels[i] > labels[j]``."""
    both = mask[:, :, None] & mask[:, None, :]
    return both & (labels[:, :, None] > labels[:, None, :])


def gains(labels: Tensor) -> Tensor:
    """Exponential NDCG gain ``2^rel - 1`` (Järvelin & Kekäläinen 2002; Burges et al. 2005)."""
    return torch.exp2(labels.clamp(min=0)) - 1


def ranks_from_scores(scores: Tensor, mask: Tensor) -> Tensor:
    """1-based rank of every item by descending score; padding ranks last; ties keep list order."""
    key = torch.where(mask, scores.detach(), torch.full_like(scores, float("-inf")))
    order = torch.sort(key, dim=-1, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    positions = torch.arange(1, scores.shape[-1] + 1, device=scores.device).expand_as(order)
    ranks.scatter_(-1, order, positions)
    return ranks


def inverse_log_discount(ranks: Tensor, k: int | None = None, dtype: torch.dtype | None = None) -> Tensor:
    """``1 / log2(1 + rank)`` in ``dtype`` (default float32), zero beyond rank ``k`` when ``k`` is given."""
    disc = 1.0 / torch.log2(1.0 + ranks.to(torch.float32 if dtype is None else dtype))
    if k is not None:
        disc = torch.where(ranks <= k, disc, torch.zeros_like(disc))
    return disc


def ideal_dcg(labels: Tensor, mask: Tensor, k: int | None = None) -> Tensor:
    """Per-list ideal DCG (optionally at ``k``) with exponential gains, ``[B]``."""
    g = torch.where(mask, gains(labels), torch.zeros_like(labels))
    g_sorted = torch.sort(g, dim=-1, descending=True).values
    pos = torch.arange(1, labels.shape[-1] + 1, device=labels.device, dtype=labels.dtype)
    disc = 1.0 / torch.log2(1.0 + pos)
    if k is not None:
        disc = torch.where(pos <= k, disc, torch.zeros_like(disc))
    return (g_sorted * disc).sum(-1)


def check_positive(name: str, **params: float) -> None:
    for key, value in params.items():
        if not (isinstance(value, (int, float)) and value > 0):
            raise InputError(f"{name}: {key} must be a positive number, got {value!r}")


def check_k(name: str, k: int | None) -> None:
    if k is not None and not (isinstance(k, int) and k >= 1):
        raise InputError(f"{name}: k must be a positive integer or None, got {k!r}")


def neg_fill(dtype: torch.dtype) -> float:
    """A finite stand-in for -inf: vanishes under exp, yet never yields inf - inf = NaN."""
    return torch.finfo(dtype).min / 4


def masked_log_softmax(x: Tensor, mask: Tensor) -> Tensor:
    """``log_softmax`` over real items only; padded entries come back as 0 (multiply them away)."""
    x = torch.where(mask, x, torch.full_like(x, neg_fill(x.dtype)))
    out = torch.log_softmax(x, dim=-1)
    return torch.where(mask, out, torch.zeros_like(out))
