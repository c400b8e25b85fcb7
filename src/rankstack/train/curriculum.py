"""Difficulty curricula for reranker training from first-stage evidence.

After "Training Curricula for Open Domain Answer Re-Ranking" (MacAvaney, Nardini, Perego, Tonellotto,
Goharian & Frieder, SIGIR 2020): a training sample is *easy* when the first stage already agrees with
its label (a relevant document ranked high, a non-relevant one ranked low) and *hard* otherwise. The
curriculum weights each sample's loss by its easiness at the start and anneals every weight linearly
to 1 over the first ``fraction`` of training, after which training is uniform:

    w(sample, t) = e + (1 - e) * min(1, t / (fraction * T))

Easiness heuristics (per item, then averaged over a group's items, as the paper averages the
positive's and the negative's heuristic for a pair):

- ``recip`` (the paper's reciprocal-rank heuristic): a positive at first-stage rank r has easiness
  1/r; a negative has 1 - 1/r; an item the first stage did not retrieve is a hard positive (0) or an
  easy negative (1).
- ``norm``: min-max normalised first-stage score within the query's candidates: positive s, negative
  1 - s (unretrieved as above).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rankstack.errors import InputError

__all__ = ["HEURISTICS", "item_easiness", "group_easiness", "Curriculum"]

HEURISTICS = ("recip", "norm")


def item_easiness(labels: Sequence[float], ranks: Sequence[int], norm_scores: Sequence[float] | None = None,
                  heuristic: str = "recip") -> np.ndarray:
    """Per-item easiness in [0, 1]; ``ranks`` are 1-based first-stage ranks (0 = not retrieved)."""
    if heuristic not in HEURISTICS:
        raise InputError(f"unknown curriculum heuristic {heuristic!r}", fix=f"choose one of {', '.join(HEURISTICS)}")
    labels = np.asarray(labels, dtype=np.float64)
    ranks = np.asarray(ranks, dtype=np.int64)
    retrieved = ranks > 0
    if heuristic == "recip":
        agree = np.where(retrieved, 1.0 / np.maximum(ranks, 1), 0.0)
    else:
        if norm_scores is None:
            raise InputError("the 'norm' heuristic needs normalised first-stage scores")
        agree = np.where(retrieved, np.clip(np.asarray(norm_scores, dtype=np.float64), 0, 1), 0.0)
    # agree = how strongly the first stage says "relevant"; easy = agreement with the label
    return np.where(labels > 0, agree, 1.0 - agree)


def group_easiness(labels: Sequence[float], ranks: Sequence[int], norm_scores: Sequence[float] | None = None,
                   heuristic: str = "recip") -> float:
    """A group's easiness: the mean over its items, mixing positives and negatives 1:1 as in a pair."""
    e = item_easiness(labels, ranks, norm_scores, heuristic)
    labels = np.asarray(labels, dtype=np.float64)
    pos, neg = e[labels > 0], e[labels <= 0]
    parts = [x.mean() for x in (pos, neg) if len(x)]
    return float(np.mean(parts)) if parts else 1.0


class Curriculum:
    """Weights that start at each sample's easiness and anneal linearly to 1 (MacAvaney et al., 2020).

    ``fraction``: share of the training steps over which the weights reach 1 (the paper's ``m``);
    ``floor``: a minimum weight so no sample is ignored entirely at the start.
    """

    def __init__(self, fraction: float = 0.5, floor: float = 0.0) -> None:
        if not 0.0 < fraction <= 1.0:
            raise InputError(f"curriculum fraction must be in (0, 1], got {fraction!r}")
        if not 0.0 <= floor <= 1.0:
            raise InputError(f"curriculum floor must be in [0, 1], got {floor!r}")
        self.fraction, self.floor = float(fraction), float(floor)

    def progress(self, step: int, total_steps: int) -> float:
        """How far the annealing is, in [0, 1]."""
        if total_steps <= 0:
            return 1.0
        return float(min(1.0, max(0.0, step / (self.fraction * total_steps))))

    def weights(self, easiness: Sequence[float] | np.ndarray, step: int, total_steps: int) -> np.ndarray:
        e = np.clip(np.asarray(easiness, dtype=np.float64), 0.0, 1.0)
        e = self.floor + (1.0 - self.floor) * e
        p = self.progress(step, total_steps)
        return e + (1.0 - e) * p

    def to_dict(self) -> dict[str, float]:
        return {"fraction": self.fraction, "floor": self.floor}
