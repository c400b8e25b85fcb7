"""LoL regulariser (Zhu et al., SIGIR 2022): NumPy reference, zero when deeper is not worse, gradients."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rankstack.errors import InputError  # noqa: E402
from rankstack.losses.lol import lol_regularizer  # noqa: E402


def reference(losses: np.ndarray, mask: np.ndarray | None = None, margin: float = 0.0) -> float:
    """Plain loops: per query, mean over present pairs i<j of max(0, L_j - L_i + margin)."""
    b, m = losses.shape
    mask = np.ones_like(losses, bool) if mask is None else mask
    per_query = []
    for r in range(b):
        terms = [max(0.0, losses[r, j] - losses[r, i] + margin)
                 for i in range(m) for j in range(i + 1, m) if mask[r, i] and mask[r, j]]
        if terms:
            per_query.append(sum(terms) / len(terms))
    return float(np.mean(per_query)) if per_query else 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("margin", [0.0, 0.3])
def test_matches_numpy_reference(seed, margin):
    rng = np.random.default_rng(seed)
    losses = rng.normal(size=(7, 4))
    mask = rng.random((7, 4)) > 0.25
    mask[0] = [True, False, False, False]  # a query with no pair is left out of the mean
    got = lol_regularizer(torch.tensor(losses), torch.tensor(mask), margin=margin)
    assert float(got) == pytest.approx(reference(losses, mask, margin), abs=1e-12)
    assert float(lol_regularizer(torch.tensor(losses), margin=margin)) == \
        pytest.approx(reference(losses, None, margin), abs=1e-12)


def test_zero_when_deeper_revisions_are_not_worse():
    losses = torch.tensor([[3.0, 2.0, 2.0, 0.5], [1.0, 1.0, 1.0, 1.0]])
    assert float(lol_regularizer(losses)) == 0.0
    # one violation: depth 3 worse than depth 2 by 0.4, over 6 pairs, one query in 1 -> 0.4 / 6 / 1
    assert float(lol_regularizer(torch.tensor([[3.0, 2.0, 2.4, 1.0]]))) == pytest.approx(0.4 / 6)
    # a margin makes equal losses a violation
    assert float(lol_regularizer(losses[1:], margin=0.1)) == pytest.approx(0.1)


def test_gradient_pushes_the_deeper_loss_down_and_the_shallower_up():
    losses = torch.tensor([[1.0, 2.0]], requires_grad=True)  # deeper revision is worse
    lol_regularizer(losses).backward()
    assert losses.grad.tolist() == [[-1.0, 1.0]]
    detached = torch.tensor([[1.0, 2.0]], requires_grad=True)  # variant: only the deeper one moves
    out = lol_regularizer(detached, detach_shallower=True)
    assert float(out.detach()) == 1.0
    out.backward()
    assert detached.grad.tolist() == [[0.0, 1.0]]
    ok = torch.tensor([[2.0, 1.0]], requires_grad=True)     # deeper is better: no gradient at all
    lol_regularizer(ok).backward()
    assert ok.grad.tolist() == [[0.0, 0.0]]


def test_all_masked_is_zero_and_keeps_the_graph():
    losses = torch.tensor([[1.0, 2.0]], requires_grad=True)
    out = lol_regularizer(losses, torch.tensor([[True, False]]))
    assert float(out.detach()) == 0.0
    out.backward()
    assert losses.grad.tolist() == [[0.0, 0.0]]


@pytest.mark.parametrize("bad, kw, words", [
    (torch.zeros(4), {}, "[B, m]"),
    (torch.zeros(3, 1), {}, "two feedback depths"),
    (torch.zeros(3, 2), {"margin": -1.0}, "margin"),
    (torch.zeros(3, 2), {"mask": torch.ones(3, 3, dtype=torch.bool)}, "mask shape"),
])
def test_bad_input_is_one_clear_error(bad, kw, words):
    with pytest.raises(InputError) as info:
        lol_regularizer(bad, **kw)
    assert words in str(info.value)
