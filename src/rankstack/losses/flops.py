"""Sparsity regularisers for learned sparse representations: FLOPS and IDF-aware FLOPS.

These are not ranking losses (they read representations ``[B, V]``, not scores ``[B, L]``), so they
register under kind ``"regulariser"``; a training recipe adds ``lambda * regulariser(reps)`` to its
ranking loss.

* FLOPS (Paria, Yeh, Yen, Xu, Ravikumar & Póczos, "Minimizing FLOPs to Learn Efficient Sparse
  Representations", ICLR 2020): ``sum_j (mean_i |w_ij|)^2``, a smooth surrogate of the expected
  number of multiplications of an inverted-index dot product: it penalises terms that are active in
  many texts (long posting lists) far more than rare ones. SPLADE v2 (Formal et al., 2021) uses it
  with separate lambdas for queries and documents, ramped up quadratically (:func:`lambda_warmup`).
* IDF-aware FLOPS (Geng, Ru & Yang, "Towards Competitive Search Relevance For Inference-Free Learned
  Sparse Retrievers", 2024): in the inference-free model a document weight ``w_j`` meets a query as
  ``idf_j * w_j``, and plain FLOPS, penalising every term alike, prunes informative rare terms as
  readily as frequent uninformative ones. The IDF-aware variant makes the penalty depend on the
  term's idf so that low-idf (frequent) terms are penalised more and high-idf (informative) terms
  less: we weight term ``j`` by ``1 / idf_j``, ``sum_j (mean_i |w_ij| / idf_j)^2``. This per-term
  weighting is our reading of the paper's stated effect, not a copy of its code (none is available
  offline); :func:`flops` takes any per-term weights, so another weighting is one argument away.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rankstack.errors import InputError
from rankstack.losses._lazy import torch
from rankstack.registry import register

__all__ = ["flops", "idf_flops", "lambda_warmup", "REGULARISERS"]

if TYPE_CHECKING:
    from torch import Tensor

REGULARISERS = ("flops", "idf-flops")


def flops(reps: Tensor, term_weights: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
    """``sum_j (c_j * mean_i |reps_ij|)^2`` over the real rows (``mask[B]``; all rows when None).

    ``term_weights`` ``[V]`` are the ``c_j`` (None: 1). An empty batch gives 0.
    """
    if reps.dim() != 2:
        raise InputError(f"flops: representations must be [B, V], got shape {tuple(reps.shape)}")
    reps = reps.float().abs()
    if mask is not None:
        reps = reps[mask.bool()]
    if reps.shape[0] == 0:
        return reps.sum() * 0.0
    mean = reps.mean(dim=0)
    if term_weights is not None:
        if term_weights.shape != mean.shape:
            raise InputError(f"flops: term_weights have shape {tuple(term_weights.shape)}, expected {tuple(mean.shape)}")
        mean = mean * term_weights.to(mean.dtype)
    return (mean ** 2).sum()


def idf_flops(reps: Tensor, idf: Tensor, mask: Tensor | None = None, floor: float = 0.1) -> Tensor:
    """IDF-aware FLOPS (Geng et al., 2024): FLOPS with term weights ``1 / max(idf_j, floor)``.

    ``floor`` keeps a term that occurs in (almost) every document from an unbounded weight.
    """
    if idf is None:
        raise InputError("idf_flops needs the corpus idf per vocabulary term")
    if (idf < 0).any():
        raise InputError("idf_flops: idf values must be non-negative")
    return flops(reps, term_weights=1.0 / idf.float().clamp(min=floor), mask=mask)


def lambda_warmup(step: int, lam: float, warmup_steps: int) -> float:
    """The regulariser weight at ``step``: ``lam * min(1, (step / warmup_steps)^2)`` (SPLADE's quadratic ramp).

    Why a ramp: at full strength from step 0 the regulariser zeroes the representations before
    the ranking loss has shaped them (Formal et al., 2021).
    """
    if lam < 0:
        raise InputError(f"regulariser lambda must be >= 0, got {lam!r}")
    if warmup_steps <= 0:
        return float(lam)
    return float(lam) * min(1.0, (step / warmup_steps) ** 2)


def get_regulariser(name: str) -> Any:
    """``"flops"`` or ``"idf-flops"`` as a function ``(reps, idf, mask) -> Tensor``."""
    from rankstack.registry import build

    return build(name, kind="regulariser")


@register("flops", kind="regulariser")
def _build_flops() -> Any:
    """Plain FLOPS (Paria et al., 2020)."""
    return lambda reps, idf=None, mask=None: flops(reps, mask=mask)


@register("idf-flops", kind="regulariser")
def _build_idf_flops() -> Any:
    """IDF-aware FLOPS (Geng et al., 2024)."""
    return lambda reps, idf=None, mask=None: idf_flops(reps, idf, mask=mask)
