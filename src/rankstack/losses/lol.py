"""LoL: the comparative regulariser over the reformulation losses of one query's PRF revisions.

Zhu, Pang, Lan, Shen & Cheng, "LoL: A Comparative Regularization Loss over Query Reformulation Losses
for Pseudo-Relevance Feedback" (SIGIR 2022). Why: a PRF model trained on each feedback depth
independently is never told that a revision made from *more* feedback documents should be at least
as good as one made from fewer, so it drifts as feedback grows. LoL revises each query ``m`` times
from feedback depths ``k_1 < ... < k_m``, computes the reformulation (ranking) loss ``L_i`` of each
revision, and adds a hinge on every ordered pair: a deeper revision may not have a larger loss,

    LoL = mean over queries of  sum_{i<j} max(0, L_j - L_i + margin) / #pairs,

so the total objective is ``sum_i L_i / m + alpha * LoL`` (the recipe's ``lol_weight`` is alpha).
The regulariser is zero exactly when losses do not grow with depth; its gradient pushes the deeper
revision's loss down and the shallower one's up (both sides stay differentiable, as in the paper,
which regularises the losses themselves). Averaging over pairs (rather than summing) keeps alpha
comparable across numbers of depths; that normalisation is our choice. ``detach_shallower=True`` is
our variant (not the paper's): the shallower revision's loss is a constant target, so the penalty can
only improve the deeper revision and never makes the shallower one worse to close the gap.

It is not a ``loss(scores[B, L], labels, mask)`` (it takes per-revision losses ``[B, m]``), so it is
a plain function, not a registered loss.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rankstack.errors import InputError
from rankstack.losses._lazy import torch

__all__ = ["lol_regularizer"]

if TYPE_CHECKING:
    from torch import Tensor


def lol_regularizer(losses: Tensor, mask: Tensor | None = None, margin: float = 0.0,
                    detach_shallower: bool = False) -> Tensor:
    """The LoL penalty for ``losses[B, m]``: column ``i`` is the loss of the revision made from the
    ``i``-th smallest feedback depth. ``mask[B, m]`` (True = present) drops revisions a query lacks
    (e.g. fewer feedback documents than a depth). Returns a scalar (mean over queries with a pair).
    """
    if not hasattr(losses, "ndim") or losses.ndim != 2:
        raise InputError(f"lol_regularizer: losses must be a [B, m] tensor, got shape "
                         f"{tuple(getattr(losses, 'shape', ()))}", fix="stack per-revision losses on dim 1")
    if losses.shape[1] < 2:
        raise InputError("lol_regularizer: needs at least two feedback depths to compare",
                         fix="give revisions from two or more feedback depths")
    if not isinstance(margin, (int, float)) or margin < 0:
        raise InputError(f"lol_regularizer: margin must be a number >= 0, got {margin!r}")
    m = losses.shape[1]
    if mask is None:
        mask = torch.ones_like(losses, dtype=torch.bool)
    elif tuple(mask.shape) != tuple(losses.shape):
        raise InputError(f"lol_regularizer: mask shape {tuple(mask.shape)} != losses shape {tuple(losses.shape)}")
    i, j = torch.triu_indices(m, m, offset=1, device=losses.device)
    shallow = losses[:, i].detach() if detach_shallower else losses[:, i]
    diff = losses[:, j] - shallow + margin               # [B, pairs]: deeper minus shallower
    valid = mask[:, i] & mask[:, j]
    hinge = torch.where(valid, torch.relu(diff), torch.zeros_like(diff))
    pairs = valid.sum(-1)
    per_query = hinge.sum(-1) / pairs.clamp(min=1)
    has = pairs > 0
    if not bool(has.any()):
        return losses.sum() * 0.0
    return per_query[has].mean()
