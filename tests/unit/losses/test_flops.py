"""FLOPS and IDF-aware FLOPS: values and gradients against NumPy by hand, masks, the lambda ramp."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rankstack.errors import InputError  # noqa: E402
from rankstack.losses.flops import flops, get_regulariser, idf_flops, lambda_warmup  # noqa: E402


def np_flops(w: np.ndarray, c: np.ndarray | None = None) -> float:
    mean = np.abs(w).mean(axis=0)
    if c is not None:
        mean = mean * c
    return float((mean ** 2).sum())


def np_flops_grad(w: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
    """d/dw_ij sum_j (c_j mean_i |w_ij|)^2 = 2 c_j^2 mean_j sign(w_ij) / B."""
    c = np.ones(w.shape[1]) if c is None else c
    mean = np.abs(w).mean(axis=0)
    return 2 * c ** 2 * mean * np.sign(w) / w.shape[0]


@pytest.fixture
def reps() -> np.ndarray:
    rng = np.random.default_rng(0)
    w = np.maximum(rng.normal(size=(5, 7)), 0)  # SPLADE weights are >= 0, many exactly 0
    w[:, 3] = 0.0
    return w


def test_flops_value_by_hand():
    w = np.array([[1.0, 0.0, 2.0], [3.0, 0.0, 0.0]])
    # means per term: 2, 0, 1 -> 4 + 0 + 1
    assert float(flops(torch.tensor(w))) == pytest.approx(5.0)


def test_flops_value_and_gradient_match_numpy(reps):
    t = torch.tensor(reps, requires_grad=True)
    value = flops(t)
    value.backward()
    assert float(value.detach()) == pytest.approx(np_flops(reps), rel=1e-6)
    np.testing.assert_allclose(t.grad.numpy(), np_flops_grad(reps), rtol=1e-5, atol=1e-7)


def test_idf_flops_value_and_gradient_match_numpy(reps):
    idf = np.linspace(0.1, 3.0, reps.shape[1])
    t = torch.tensor(reps, requires_grad=True)
    value = idf_flops(t, torch.tensor(idf, dtype=torch.float32))
    value.backward()
    weights = 1.0 / np.maximum(idf, 0.1)
    assert float(value.detach()) == pytest.approx(np_flops(reps, weights), rel=1e-5)
    np.testing.assert_allclose(t.grad.numpy(), np_flops_grad(reps, weights), rtol=1e-4, atol=1e-6)


def test_idf_aware_penalty_falls_with_idf():
    """Frequent (low-idf) terms cost more than rare (high-idf) ones: weight 1/idf, squared."""
    w = torch.tensor([[1.0, 1.0]])
    assert float(idf_flops(w, torch.tensor([1.0, 1.0]))) == pytest.approx(2.0)
    assert float(idf_flops(w, torch.tensor([0.5, 4.0]))) == pytest.approx(4.0 + 1 / 16)
    assert float(idf_flops(w, torch.tensor([0.0, 1.0]))) == pytest.approx(100.0 + 1.0)  # floored at idf 0.1


def test_mask_drops_padding_rows(reps):
    mask = torch.tensor([True, True, False, True, False])
    got = float(flops(torch.tensor(reps), mask=mask))
    assert got == pytest.approx(np_flops(reps[mask.numpy()]), rel=1e-6)
    assert float(flops(torch.tensor(reps), mask=torch.zeros(5, dtype=torch.bool))) == 0.0


def test_regulariser_prefers_spread_over_shared_terms():
    """The point of FLOPS: the same total weight costs more when every text uses the same term."""
    shared = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    spread = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert float(flops(shared)) > float(flops(spread))


def test_lambda_warmup_is_quadratic_then_flat():
    assert lambda_warmup(0, 0.1, 100) == 0.0
    assert lambda_warmup(50, 0.1, 100) == pytest.approx(0.025)
    assert lambda_warmup(100, 0.1, 100) == pytest.approx(0.1)
    assert lambda_warmup(1000, 0.1, 100) == pytest.approx(0.1)
    assert lambda_warmup(3, 0.1, 0) == pytest.approx(0.1)
    with pytest.raises(InputError, match="lambda"):
        lambda_warmup(1, -1.0, 10)


def test_bad_input_is_refused():
    with pytest.raises(InputError, match=r"\[B, V\]"):
        flops(torch.zeros(3))
    with pytest.raises(InputError, match="term_weights"):
        flops(torch.zeros(2, 3), term_weights=torch.ones(4))
    with pytest.raises(InputError, match="non-negative"):
        idf_flops(torch.zeros(2, 2), torch.tensor([1.0, -1.0]))


def test_registered_by_name(reps):
    t = torch.tensor(reps)
    idf = torch.full((reps.shape[1],), 2.0)
    assert float(get_regulariser("flops")(t)) == pytest.approx(np_flops(reps), rel=1e-6)
    assert float(get_regulariser("idf-flops")(t, idf)) == pytest.approx(np_flops(reps) / 4, rel=1e-5)
