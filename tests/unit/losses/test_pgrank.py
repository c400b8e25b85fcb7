"""PG-Rank: the REINFORCE estimator is unbiased (against the exact gradient of expected nDCG@k by
enumeration of all permutations), Plackett-Luce sampling, padding, baselines, argument checks."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rankstack.errors import InputError  # noqa: E402
from rankstack.losses import available_losses, get_loss  # noqa: E402
from rankstack.losses.pgrank import sample_rankings  # noqa: E402


def _ndcg_at_k(labels: list[float], ranking: tuple[int, ...], k: int) -> float:
    gains = [2.0 ** labels[i] - 1 for i in ranking]
    dcg = sum(g / math.log2(2 + r) for r, g in enumerate(gains[:k]))
    ideal = sorted((2.0 ** x - 1 for x in labels), reverse=True)
    idcg = sum(g / math.log2(2 + r) for r, g in enumerate(ideal[:k]))
    return dcg / idcg


def _exact_gradient(scores: list[float], labels: list[float], k: int, temperature: float) -> np.ndarray:
    """grad_s E_PL[nDCG@k]: every permutation's Plackett-Luce probability, differentiated by autograd."""
    s = torch.tensor(scores, dtype=torch.float64, requires_grad=True)
    expected = torch.zeros((), dtype=torch.float64)
    for perm in itertools.permutations(range(len(scores))):
        z = s[list(perm)] / temperature
        log_p = sum(z[j] - torch.logsumexp(z[j:], 0) for j in range(len(perm)))
        expected = expected + torch.exp(log_p) * _ndcg_at_k(labels, perm, k)
    expected.backward()
    return s.grad.numpy()


def _monte_carlo(scores, labels, k, temperature, reps, **loss_args):
    """Per-replicate gradient estimates of grad E[nDCG@k] (minus the loss gradient), ``[reps, L]``."""
    torch.manual_seed(0)
    s = torch.tensor([scores] * reps, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([labels] * reps, dtype=torch.float64)
    loss = get_loss("pgrank", k=k, temperature=temperature, **loss_args)(s, y)
    loss.backward()
    return (-s.grad * reps).numpy()


CASES = [([0.3, -0.5, 1.0, 0.1], [2.0, 0.0, 1.0, 0.0], 10, 1.0),
         ([0.3, -0.5, 1.0, 0.1], [2.0, 0.0, 1.0, 0.0], 2, 1.0),      # only the top-2 prefix counts
         ([1.5, 0.0, -1.0], [0.0, 1.0, 1.0], 1, 0.5)]


@pytest.mark.parametrize("scores,labels,k,temperature", CASES)
@pytest.mark.parametrize("baseline,samples", [("loo", 4), ("none", 1), ("loo", 2)])
def test_estimator_is_unbiased(scores, labels, k, temperature, baseline, samples):
    exact = _exact_gradient(scores, labels, k, temperature)
    est = _monte_carlo(scores, labels, k, temperature, 40000, samples=samples, baseline=baseline)
    mean, se = est.mean(0), est.std(0) / math.sqrt(len(est))
    assert np.all(np.abs(mean - exact) <= 4.5 * se + 1e-4), (mean, exact, se)
    assert np.abs(exact).max() > 0.01  # a case where the gradient is not trivially 0


def test_the_check_detects_a_biased_estimator():
    """The mean baseline including the sample itself shrinks the expected gradient by (n-1)/n: with 2
    samples, the Monte-Carlo mean lands on half the exact gradient, far outside the tolerance above."""
    scores, labels, k, t = CASES[0]
    exact = _exact_gradient(scores, labels, k, t)
    est = _monte_carlo(scores, labels, k, t, 40000, samples=2, baseline="mean")
    mean, se = est.mean(0), est.std(0) / math.sqrt(len(est))
    assert np.any(np.abs(mean - exact) > 4.5 * se + 1e-4)
    assert np.all(np.abs(mean - exact / 2) <= 4.5 * se + 1e-4)


def test_gumbel_top_k_samples_plackett_luce():
    torch.manual_seed(1)
    s = torch.tensor([[1.0, 0.0, -1.0]])
    order = sample_rankings(s, torch.ones(1, 3, dtype=torch.bool), 60000)[0]
    first = np.bincount(order[:, 0].numpy(), minlength=3) / 60000
    np.testing.assert_allclose(first, torch.softmax(s[0], 0).numpy(), atol=0.01)
    # second place given item 0 first: softmax over the remaining two
    rest = order[order[:, 0] == 0][:, 1].numpy()
    assert abs((rest == 1).mean() - 1 / (1 + math.exp(-1))) < 0.015


def test_padding_is_never_sampled_first_and_gets_no_gradient():
    torch.manual_seed(2)
    s = torch.tensor([[0.1, 5.0, 0.2, float("nan")]], requires_grad=True)
    mask = torch.tensor([[True, False, True, False]])
    order = sample_rankings(s.detach().nan_to_num(), mask, 50)
    assert set(order[0, :, :2].flatten().tolist()) <= {0, 2}
    loss = get_loss("pgrank", samples=4)(s, torch.tensor([[1.0, 1.0, 0.0, 1.0]]), mask)
    loss.backward()
    assert torch.isfinite(loss)
    assert s.grad[0, 1] == 0 and s.grad[0, 3] == 0 and s.grad[0, 0] != 0


def test_value_is_one_minus_sampled_ndcg_and_vanishes_on_a_sure_ideal_ranking():
    s = torch.tensor([[30.0, 20.0, 10.0, 0.0]], requires_grad=True)  # the ideal order, almost surely
    loss = get_loss("pgrank", samples=4)(s, torch.tensor([[3.0, 2.0, 1.0, 0.0]]))
    loss.backward()
    assert float(loss.detach()) == pytest.approx(0.0, abs=1e-6)
    assert float(s.grad.abs().max()) < 1e-6
    torch.manual_seed(0)
    worst = get_loss("pgrank", samples=4)(torch.tensor([[0.0, 10.0, 20.0, 30.0]]),
                                           torch.tensor([[3.0, 2.0, 1.0, 0.0]]))
    assert 0.2 < float(worst.detach()) < 1.0


def test_lists_without_relevant_items_contribute_nothing_and_draw_nothing():
    s = torch.randn(3, 5, requires_grad=True)
    state = torch.random.get_rng_state()
    loss = get_loss("pgrank")(s, torch.zeros(3, 5))
    loss.backward()
    assert float(loss.detach()) == 0.0 and float(s.grad.abs().sum()) == 0.0
    assert torch.equal(torch.random.get_rng_state(), state)


def test_gradient_improves_expected_ndcg():
    """Gradient steps on the PG-Rank loss raise the exact expected nDCG of the policy."""
    scores, labels = [0.5, 0.0, -0.5, 1.0], [0.0, 1.0, 2.0, 0.0]
    s = torch.tensor([scores], requires_grad=True)
    opt = torch.optim.SGD([s], lr=2.0)
    torch.manual_seed(3)
    for _ in range(60):
        opt.zero_grad()
        get_loss("pgrank", samples=8)(s, torch.tensor([labels])).backward()
        opt.step()

    def expected(v):
        z = torch.tensor(v, dtype=torch.float64)
        total = 0.0
        for perm in itertools.permutations(range(4)):
            zz = z[list(perm)]
            p = math.exp(sum(float(zz[j] - torch.logsumexp(zz[j:], 0)) for j in range(4)))
            total += p * _ndcg_at_k(labels, perm, 10)
        return total

    assert expected(s.detach()[0].tolist()) > expected(scores) + 0.1


def test_registered_and_arguments_checked():
    assert "pgrank" in available_losses()
    spec = {"name": "pgrank", "args": {"samples": 4, "baseline": "none"}}
    assert get_loss(spec).params == {"samples": 4, "baseline": "none"}
    for bad in ({"samples": 0}, {"k": 0}, {"temperature": 0.0}, {"baseline": "median"},
                {"samples": 1, "baseline": "loo"}):
        with pytest.raises(InputError):
            get_loss("pgrank", **bad)
