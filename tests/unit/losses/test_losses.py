"""Loss library: registry/API, padding invariance, stability, limits, and learning the ideal order."""

from __future__ import annotations

import inspect
import math
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import rankstack.losses as losses  # noqa: E402
from rankstack.errors import InputError, UnknownComponentError  # noqa: E402
from rankstack.losses import get_loss  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    """Shared fixture in tests/conftest.py."""

ALL = ["bce", "mse", "ranknet", "hinge", "lambdarank", "lambdaloss", "auc", "listnet", "listmle",
       "plistmle", "approxndcg", "neuralndcg", "infonce", "margin_mse", "listwise_kl"]
PARAM_VARIANTS = [(n, {}) for n in ALL] + [("auc", {"scope": "batch"}), ("margin_mse", {"pairs": "all"}),
                                           ("neuralndcg", {"k": 3}), ("lambdarank", {"k": 2}),
                                           ("listnet", {"target": "softmax"})]
IDS = [f"{n}{'-' + '-'.join(map(str, p.values())) if p else ''}" for n, p in PARAM_VARIANTS]


def ndcg(scores: np.ndarray, labels: np.ndarray, k: int | None = None) -> float:
    order = np.argsort(-scores, kind="stable")
    g = 2.0 ** labels - 1
    disc = 1 / np.log2(np.arange(2, len(scores) + 2))
    if k is not None:
        disc[k:] = 0
    ideal = (np.sort(g)[::-1] * disc).sum()
    return float((g[order] * disc).sum() / ideal)


# ---------------------------------------------------------------- API
STOCHASTIC = ["pgrank"]  # sampled rankings: its own tests in test_pgrank.py, not the deterministic checks here


def test_every_loss_is_registered():
    assert sorted(losses.available_losses()) == sorted(ALL + STOCHASTIC)


def test_import_rankstack_and_losses_does_not_import_torch():
    code = ("import sys, rankstack, rankstack.losses; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_factory_defaults_match_implementations():
    from rankstack.registry import lookup

    for name in ALL:
        factory = inspect.signature(lookup(name, "loss")).parameters
        impl = inspect.signature(getattr(losses, name)).parameters
        extra = {k: p.default for k, p in impl.items() if k not in ("scores", "labels", "mask", "weights")}
        assert {k: p.default for k, p in factory.items()} == extra, name


def test_get_loss_errors():
    with pytest.raises(UnknownComponentError, match="listnet"):
        get_loss("listnett")
    with pytest.raises(InputError, match="temperature"):
        get_loss("listnet", temprature=0.5)
    with pytest.raises(InputError, match="positive"):
        get_loss("approxndcg", temperature=-1.0)
    with pytest.raises(InputError):
        get_loss("auc", scope="global")
    with pytest.raises(InputError, match="shape"):
        get_loss("ranknet")(torch.zeros(2, 3), torch.zeros(2, 4), None)
    with pytest.raises(InputError, match=r"\[B, L\]"):
        get_loss("ranknet")(torch.zeros(3), torch.zeros(3), None)


def test_spec_and_bound_params():
    loss = get_loss({"name": "infonce", "args": {"temperature": 0.1}})
    assert loss.spec() == {"name": "infonce", "args": {"temperature": 0.1}}
    assert get_loss(loss.spec()).params == loss.params
    assert get_loss(loss) is loss
    assert "infonce" in repr(loss)


# ---------------------------------------------------------------- padding
def _random_inputs(rng, name, B=4, L=6):
    s = torch.tensor(rng.normal(size=(B, L)))
    if name in ("margin_mse", "listwise_kl"):
        y = torch.tensor(rng.normal(size=(B, L)) * 2)
    elif name == "bce":
        y = torch.tensor((rng.random((B, L)) < 0.4).astype(float))
    else:
        y = torch.tensor(rng.integers(0, 4, size=(B, L)).astype(float))
    m = torch.tensor(rng.random((B, L)) < 0.85)
    m[:, 0] = True
    w = torch.tensor(rng.uniform(0.5, 2.0, size=(B, L)))
    return s, y, m, w


@pytest.mark.parametrize("name,params", PARAM_VARIANTS, ids=IDS)
def test_padding_invariance(name, params):
    """Inserting masked items (any scores and labels, even inf/NaN) changes neither loss nor gradients."""
    rng = np.random.default_rng(0)
    loss = get_loss(name, **params)
    s, y, m, w = _random_inputs(rng, name)
    B, L = s.shape
    extra = 4
    total = L + extra
    # random positions for the real columns inside the padded list
    cols = np.stack([np.sort(rng.choice(total, size=L, replace=False)) for _ in range(B)])
    s2 = torch.tensor(rng.normal(size=(B, total)) * 1e3)
    s2[0, :] = float("nan")
    s2[1, :] = float("inf")
    y2 = torch.tensor(rng.integers(0, 10, size=(B, total)).astype(float))
    m2 = torch.zeros(B, total, dtype=torch.bool)
    w2 = torch.tensor(rng.uniform(0, 100, size=(B, total)))
    idx = torch.tensor(cols)
    s2.scatter_(1, idx, s)
    y2.scatter_(1, idx, y)
    m2.scatter_(1, idx, m)
    w2.scatter_(1, idx, w)
    for weights in (None, (w, w2)):
        a = s.clone().requires_grad_(True)
        b = s2.clone().requires_grad_(True)
        la = loss(a, y, m, None if weights is None else weights[0])
        lb = loss(b, y2, m2, None if weights is None else weights[1])
        la.backward()
        lb.backward()
        assert torch.isfinite(lb)
        tol = 1e-6 if name == "neuralndcg" else 1e-10
        assert float(lb.detach()) == pytest.approx(float(la.detach()), rel=tol, abs=tol)
        ga = torch.where(m, a.grad, torch.zeros_like(a.grad))
        gb = b.grad.gather(1, idx)
        torch.testing.assert_close(gb, ga, rtol=1e-5, atol=1e-8)
        assert not torch.any(b.grad.scatter(1, idx, torch.zeros_like(s)) != 0), "padding got gradient"


# ---------------------------------------------------------------- stability
@pytest.mark.parametrize("name,params", PARAM_VARIANTS, ids=IDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_extreme_scores_are_finite(name, params, dtype):
    rng = np.random.default_rng(1)
    s, y, m, w = _random_inputs(rng, name)
    s = (torch.sign(s) * 1e4).to(dtype).requires_grad_(True)
    labels = y * 1e3 if name in ("margin_mse", "listwise_kl") else y
    loss = get_loss(name, **params)(s, labels.float(), m, w.float())
    assert loss.dtype == torch.float32
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.all(torch.isfinite(s.grad))


@pytest.mark.parametrize("name", ALL)
def test_list_without_positive_contributes_zero(name):
    if name in ("bce", "mse", "margin_mse", "listwise_kl"):
        pytest.skip("pointwise and distillation losses are defined without positives")
    s = torch.randn(1, 5, requires_grad=True)
    loss = get_loss(name)(s, torch.zeros(1, 5), torch.ones(1, 5, dtype=torch.bool))
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert torch.all(s.grad == 0)


def test_batch_mean_counts_all_lists():
    s = torch.tensor([[2.0, 1.0, 0.0], [0.5, 0.1, 0.3]])
    y = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    both = get_loss("listnet")(s, y, None)
    first = get_loss("listnet")(s[:1], y[:1], None)
    assert float(both) == pytest.approx(float(first) / 2)


# ---------------------------------------------------------------- limits and identities
def test_listnet_one_hot_equals_softmax_cross_entropy():
    s = torch.randn(6, 9, dtype=torch.float64)
    target = torch.randint(0, 9, (6,))
    y = torch.nn.functional.one_hot(target, 9).double()
    expected = torch.nn.functional.cross_entropy(s, target)
    assert float(get_loss("listnet")(s, y, None)) == pytest.approx(float(expected), rel=1e-12)
    # InfoNCE with one positive per list is the same softmax cross-entropy at its temperature.
    got = get_loss("infonce", temperature=0.5)(s, y, None)
    assert float(got) == pytest.approx(float(torch.nn.functional.cross_entropy(s / 0.5, target)), rel=1e-12)


def test_approxndcg_tends_to_one_minus_ndcg():
    rng = np.random.default_rng(5)
    for _ in range(5):
        s = rng.normal(size=8)
        y = rng.integers(0, 4, size=8).astype(float)
        y[0] = 3
        loss = get_loss("approxndcg", temperature=1e-4)(torch.tensor(s)[None], torch.tensor(y)[None], None)
        assert float(loss) == pytest.approx(1 - ndcg(s, y), abs=1e-6)


@pytest.mark.parametrize("k", [None, 3])
def test_neuralndcg_low_temperature_is_ndcg_on_true_sort(k):
    rng = np.random.default_rng(6)
    for _ in range(5):
        s = rng.normal(size=8)
        y = rng.integers(0, 4, size=8).astype(float)
        y[0] = 2
        loss = get_loss("neuralndcg", temperature=1e-4, k=k)(torch.tensor(s)[None], torch.tensor(y)[None], None)
        assert float(loss) == pytest.approx(1 - ndcg(s, y, k), abs=1e-6)


def test_lambdarank_gradient_direction_and_top_emphasis():
    # relevant item (label 2) ranked 4th behind three non-relevant ones
    s = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0]], requires_grad=True)
    y = torch.tensor([[0.0, 0.0, 0.0, 2.0, 0.0]])
    get_loss("lambdarank")(s, y, None).backward()
    g = s.grad[0]
    assert g[3] < 0, "the relevant item must be pushed up (negative gradient)"
    assert torch.all(g[[0, 1, 2]] > 0), "items above it must be pushed down"
    assert 0 < g[4] < g[2], "the non-relevant item below is pushed down less (correct order, lower position)"
    assert g[0] > g[2] > 0, "swapping with the top position is worth more NDCG"


def test_auc_equals_ranknet_on_binary_labels_and_bounds_one_minus_auc():
    s = torch.randn(3, 8, dtype=torch.float64)
    y = (torch.rand(3, 8) < 0.4).double()
    y[:, 0] = 1
    y[:, 1] = 0
    a = get_loss("auc")(s, y, None)
    assert float(a) == pytest.approx(float(get_loss("ranknet")(s, y, None)), rel=1e-12)
    # logistic surrogate upper-bounds (1 - AUC) * ln 2
    one_minus_auc = []
    for b in range(3):
        p, n = s[b][y[b] > 0], s[b][y[b] == 0]
        one_minus_auc.append(float((p[:, None] <= n[None, :]).double().mean()))
    assert float(a) >= np.mean(one_minus_auc) * math.log(2) - 1e-12


def test_distillation_identities():
    t = torch.randn(4, 5, dtype=torch.float64)
    assert float(get_loss("listwise_kl")(t, t, None)) == pytest.approx(0.0, abs=1e-12)
    # margins are shift-invariant
    assert float(get_loss("margin_mse")(t + 3.0, t, None)) == pytest.approx(0.0, abs=1e-12)
    s = torch.randn(4, 5, dtype=torch.float64)
    kl = torch.nn.functional.kl_div(torch.log_softmax(s, -1), torch.log_softmax(t, -1),
                                    reduction="batchmean", log_target=True)
    assert float(get_loss("listwise_kl")(s, t, None)) == pytest.approx(float(kl), rel=1e-10)
    # two items: exactly the triple form of the paper
    s2, t2 = s[:, :2], t[:, :2]
    expected = (((s2[:, 0] - s2[:, 1]) - (t2[:, 0] - t2[:, 1])) ** 2).mean()
    assert float(get_loss("margin_mse")(s2, t2, None)) == pytest.approx(float(expected), rel=1e-12)


def test_weights_of_one_change_nothing():
    rng = np.random.default_rng(2)
    for name in ALL:
        s, y, m, _ = _random_inputs(rng, name)
        loss = get_loss(name)
        assert float(loss(s, y, m, torch.ones_like(s))) == pytest.approx(float(loss(s, y, m)), rel=1e-12)


# ---------------------------------------------------------------- learning the ideal order
GD = {  # name -> (params, labels used, steps, lr)
    "bce": ({}, "binary", 300, 0.1), "mse": ({}, "graded", 300, 0.1),
    "ranknet": ({}, "graded", 300, 0.1), "hinge": ({}, "graded", 300, 0.05),
    "lambdarank": ({}, "graded", 300, 0.1), "lambdaloss": ({}, "graded", 300, 0.1),
    "auc": ({}, "binary", 300, 0.1), "listnet": ({}, "graded", 300, 0.1),
    "listmle": ({}, "graded", 300, 0.1), "plistmle": ({}, "graded", 300, 0.1),
    "approxndcg": ({"temperature": 0.5}, "graded", 300, 0.1),
    "neuralndcg": ({"temperature": 0.5}, "graded", 300, 0.1),
    "infonce": ({"temperature": 1.0}, "binary", 300, 0.1),
    "margin_mse": ({"pairs": "all"}, "graded", 300, 0.1), "listwise_kl": ({}, "graded", 300, 0.1),
}


@pytest.mark.parametrize("name", ALL)
def test_gradient_descent_on_free_scores_finds_the_ideal_order(name):
    params, kind, steps, lr = GD[name]
    graded = np.array([3.0, 2.0, 2.0, 1.0, 0.0, 0.0, 1.0])
    labels = (graded > 0).astype(float) if kind == "binary" else graded
    # start from the worst order: scores increasing with decreasing relevance
    init = -graded + np.linspace(0, 0.1, len(graded))
    s = torch.tensor(init[None], requires_grad=True)
    y = torch.tensor(labels[None])
    opt = torch.optim.Adam([s], lr=lr)
    loss = get_loss(name, **params)
    for _ in range(steps):
        opt.zero_grad()
        loss(s, y, None).backward()
        opt.step()
    assert ndcg(s.detach().numpy()[0], labels) == pytest.approx(1.0, abs=1e-9)


def test_a_loss_is_added_by_one_decorated_function():
    """The whole addition: one function with ``@register_loss()``; get_loss, specs, argument checks,
    did-you-mean and ``rankstack.losses.<name>`` follow from it."""
    from rankstack import registry
    from rankstack.losses import register_loss
    from rankstack.losses._register import IMPLEMENTATIONS

    try:
        @register_loss()
        def scaled_mse_for_test(scores, labels, mask=None, weights=None, scale: float = 2.0):
            return losses.mse(scores * scale, labels, mask, weights)

        assert "scaled_mse_for_test" in losses.available_losses()
        assert losses.scaled_mse_for_test is scaled_mse_for_test
        s, y = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]])
        bound = get_loss("scaled_mse_for_test", scale=1.0)
        assert bound.spec() == {"name": "scaled_mse_for_test", "args": {"scale": 1.0}}
        assert float(bound(s, y)) == pytest.approx(float(get_loss("mse")(s, y)))
        assert float(get_loss("scaled_mse_for_test")(s, y)) == pytest.approx(float(losses.mse(s * 2, y)))
        with pytest.raises(InputError, match="did you mean 'scale'"):
            get_loss("scaled_mse_for_test", scal=1.0)
        with pytest.raises(UnknownComponentError, match="scaled_mse_for_test"):
            get_loss("scaled_mse_for_tst")
    finally:
        registry._FACTORIES["loss"].pop("scaled_mse_for_test", None)
        IMPLEMENTATIONS.pop("scaled_mse_for_test", None)
    assert "scaled_mse_for_test" not in losses.available_losses()
