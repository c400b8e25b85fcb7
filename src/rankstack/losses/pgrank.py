"""PG-Rank: policy-gradient training of a Plackett-Luce ranking policy on nDCG@k.

Gao, Chang, Cardie, Brantley & Joachims, "Policy-Gradient Training of Language Models for Ranking"
(2023). The scores of a list define a Plackett-Luce policy ``pi(ranking) = prod_k exp(s_{r_k}/t) /
sum_{m >= k} exp(s_{r_m}/t)``; the objective is the expected utility ``E_pi[nDCG@k]``, whose gradient
REINFORCE (Williams, "Simple statistical gradient-following algorithms for connectionist
reinforcement learning", 1992) estimates from sampled rankings as ``mean_i (R_i - b_i) grad log
pi(ranking_i)``. Rankings are sampled with the Gumbel-top-k trick (adding Gumbel noise to
``s/t`` and sorting draws an exact Plackett-Luce sample: Yellott 1977; Kool, van Hoof & Welling,
"Stochastic Beams and Where to Find Them", 2019). Only the first ``k`` places matter to nDCG@k, so
the log-probability is that of the sampled top-``k`` prefix (the rest of the ranking has a
zero-mean score function given the prefix: same expectation, less variance).

Baselines (variance reduction; the estimate stays unbiased when ``b_i`` does not depend on sample
``i``): ``"loo"`` (default) the mean reward of the *other* samples of the same list (Kool, van Hoof &
Welling, "Buy 4 REINFORCE Samples, Get a Baseline for Free!", 2019); ``"none"``; ``"mean"`` the mean
over all samples *including* ``i``, kept because it is common, although it shrinks the expected
gradient by ``(n-1)/n``. Hand-written because no ranking library offers this estimator over the
``(scores, labels, mask)`` signature every rankstack loss shares.

Randomness: samples come from torch's global generator; the shared Trainer seeds it inside
``fit`` (``seed``), so training runs repeat exactly. The loss *value* is ``1 - mean sampled nDCG@k``
(readable in logs); its *gradient* is the REINFORCE estimate of ``-grad E[nDCG@k]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rankstack.errors import InputError
from rankstack.losses._lazy import torch
from rankstack.losses._register import register_loss
from rankstack.losses._util import check_positive, gains, ideal_dcg, neg_fill, prepare, reduce_lists

__all__ = ["pgrank", "sample_rankings", "BASELINES"]

BASELINES = ("loo", "mean", "none")

if TYPE_CHECKING:  # annotations only: torch loads when a loss first runs
    from torch import Tensor


def sample_rankings(scores: Tensor, mask: Tensor, n: int, temperature: float = 1.0,
                    generator: torch.Generator | None = None) -> Tensor:
    """``n`` Plackett-Luce rankings per list by Gumbel-top-k: ``[B, n, L]`` item indices, best
    first; padded items always come last."""
    logits = (scores.detach() / temperature)[:, None, :].expand(-1, n, -1)
    u = torch.rand(logits.shape, dtype=logits.dtype, device=logits.device, generator=generator)
    tiny = torch.finfo(logits.dtype).tiny
    exponential = (-torch.log(u.clamp(min=tiny))).clamp(min=tiny)  # Exp(1) draws, never 0
    gumbel = -torch.log(exponential)
    key = torch.where(mask[:, None, :], logits + gumbel, torch.full_like(logits, float("-inf")))
    return torch.sort(key, dim=-1, descending=True, stable=True).indices


def _prefix_log_prob(scores: Tensor, mask: Tensor, order: Tensor, k: int, temperature: float) -> Tensor:
    """log-probability of the first ``min(k, n_real)`` places of each sampled ranking, ``[B, n]``."""
    s = (scores / temperature)[:, None, :].expand(-1, order.shape[1], -1).gather(-1, order)
    m = mask[:, None, :].expand(-1, order.shape[1], -1).gather(-1, order)
    filled = torch.where(m, s, torch.full_like(s, neg_fill(s.dtype)))
    lse_suffix = torch.logcumsumexp(filled.flip(-1), dim=-1).flip(-1)  # over the items still unplaced
    pos = torch.arange(order.shape[-1], device=scores.device)
    step = torch.where(m & (pos < k), s - lse_suffix, torch.zeros_like(s))
    return step.sum(-1)


def _sampled_ndcg(labels: Tensor, mask: Tensor, weights: Tensor | None, order: Tensor, k: int) -> Tensor:
    """nDCG@k (exponential gains, ``1/log2(1+rank)``) of each sampled ranking, ``[B, n]``."""
    g = torch.where(mask, gains(labels), torch.zeros_like(labels))
    if weights is not None:
        g = g * weights
    g_sorted = g[:, None, :].expand(-1, order.shape[1], -1).gather(-1, order)
    pos = torch.arange(1, order.shape[-1] + 1, device=labels.device, dtype=labels.dtype)
    disc = torch.where(pos <= k, 1.0 / torch.log2(1.0 + pos), torch.zeros_like(pos))
    idcg = ideal_dcg(labels, mask, k)
    return (g_sorted * disc).sum(-1) / idcg.clamp(min=torch.finfo(idcg.dtype).tiny)[:, None]


@register_loss()
def pgrank(scores: Tensor, labels: Tensor, mask: Tensor | None = None, weights: Tensor | None = None,
           samples: int = 8, k: int = 10, temperature: float = 1.0, baseline: str = "loo") -> Tensor:
    """PG-Rank: REINFORCE on nDCG@``k`` of ``samples`` Plackett-Luce rankings per list.

    Gao et al., "Policy-Gradient Training of Language Models for Ranking" (2023); see the module
    docstring for the estimator and the baselines (``"loo"``, ``"mean"``, ``"none"``). Per-item
    ``weights`` multiply gains. Labels: graded relevance ``>= 0``; a list without a relevant item
    (ideal DCG 0) contributes 0. Cost ``O(B * samples * L log L)``.
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise InputError(f"pgrank: samples must be a positive integer, got {samples!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError(f"pgrank: k must be a positive integer, got {k!r}")
    check_positive("pgrank", temperature=temperature)
    if baseline not in BASELINES:
        raise InputError(f"pgrank: unknown baseline {baseline!r}", fix=f"choose one of {', '.join(BASELINES)}")
    if baseline == "loo" and samples < 2:
        raise InputError("pgrank: the leave-one-out baseline needs samples >= 2",
                         fix="pass samples=2 or more, or baseline='none'")
    scores, labels, mask, weights = prepare(scores, labels, mask, weights, "pgrank")
    labels = labels.clamp(min=0)
    ok = ideal_dcg(labels, mask, k) > 0
    if not bool(ok.any()):  # nothing to learn: no sampling (and no draw from torch's generator)
        return reduce_lists(scores.sum(-1) * 0.0)
    order = sample_rankings(scores, mask, samples, temperature)
    with torch.no_grad():
        reward = _sampled_ndcg(labels, mask, weights, order, k)  # [B, n]
        if baseline == "loo":
            base = (reward.sum(-1, keepdim=True) - reward) / (samples - 1)
        elif baseline == "mean":
            base = reward.mean(-1, keepdim=True)
        else:
            base = torch.zeros_like(reward)
        advantage = reward - base
    log_p = _prefix_log_prob(scores, mask, order, k, temperature)
    surrogate = -(advantage * log_p).mean(-1)  # its gradient is the REINFORCE estimate of -grad E[R]
    value = 1.0 - reward.mean(-1)
    per_list = torch.where(ok, value + surrogate - surrogate.detach(), torch.zeros_like(value))
    return reduce_lists(per_list)
