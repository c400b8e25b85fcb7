"""Trainer throughput options: length bucketing (train/batching.py), the fused AdamW step and
torch.compile of the training forward. Each must change speed only, never what is learned."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rankstack.errors import InputError  # noqa: E402
from rankstack.train import Trainer  # noqa: E402
from rankstack.train.batching import epoch_batches  # noqa: E402
from rankstack.train.optim import build_optimizer, fused_supported  # noqa: E402
from tests.unit.train.test_trainer import collate, make_data, make_model  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    """Shared fixture in tests/conftest.py."""


def _padding(batches: list[list[int]]) -> int:
    return sum(max(b) * len(b) - sum(b) for b in batches)


def test_bucketing_keeps_every_example_once_and_pads_less():
    rng_lengths = np.random.default_rng(0).integers(1, 200, size=503).tolist()
    plain = list(epoch_batches(rng_lengths, 8, np.random.default_rng(1)))
    bucketed = list(epoch_batches(rng_lengths, 8, np.random.default_rng(1), bucket_key=float, bucket_window=10))
    assert sorted(x for b in bucketed for x in b) == sorted(rng_lengths)  # a permutation, nothing lost
    assert all(len(b) <= 8 for b in bucketed) and len(bucketed) == len(plain)
    assert _padding(bucketed) < 0.3 * _padding(plain)
    again = list(epoch_batches(rng_lengths, 8, np.random.default_rng(1), bucket_key=float, bucket_window=10))
    assert again == bucketed  # seeded
    other = list(epoch_batches(rng_lengths, 8, np.random.default_rng(2), bucket_key=float, bucket_window=10))
    assert other != bucketed
    # the window's batches are shuffled: lengths do not simply decrease over the epoch
    firsts = [b[0] for b in bucketed[:10]]
    assert firsts != sorted(firsts, reverse=True)


def test_bucketing_drop_last_and_iterables():
    data = list(range(10))
    got = list(epoch_batches(data, 4, np.random.default_rng(0), drop_last=True, bucket_key=float))
    assert all(len(b) == 4 for b in got) and len(got) == 2
    assert list(epoch_batches(iter(data), 4, np.random.default_rng(0))) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_trainer_with_bucketing_learns_and_records_it():
    data = make_data(40, seed=1)
    trainer = Trainer(make_model(0), "listnet", lr=0.05, epochs=3, batch_size=4, seed=0, precision="fp32",
                      bucket_key=lambda e: len(e["y"]), bucket_window=3, progress=False)
    fit = trainer.fit(data, collate)
    losses = [h["loss"] for h in fit.history if h["event"] == "train"]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    assert trainer.config()["bucketing"] == 3
    with pytest.raises(InputError, match="bucket_window"):
        Trainer(make_model(0), "listnet", epochs=1, bucket_window=0)


@pytest.mark.skipif(not fused_supported("cpu"), reason="this torch has no fused CPU AdamW")
def test_fused_adamw_follows_the_same_curve():
    data = make_data(30, seed=2)
    curves, weights = [], []
    for fused in (False, True):
        model = make_model(3)
        fit = Trainer(model, "listnet", lr=0.01, weight_decay=0.01, epochs=2, batch_size=5, seed=4,
                      precision="fp32", fused_optimizer=fused, progress=False).fit(data, collate)
        curves.append([h["loss"] for h in fit.history if h["event"] == "train"])
        # head.bias is left out: ListNet is invariant to a shift of every score in a list, so that bias's
        # gradient is zero up to rounding, and Adam scales rounding noise into full lr-sized steps whose
        # sign depends on the kernel (seen: 0.005 apart after 12 steps on an AVX-512 EPYC; the other 160
        # weights within 3e-8)
        weights.append(torch.cat([p.detach().flatten() for n, p in model.named_parameters() if n != "head.bias"]))
    np.testing.assert_allclose(curves[0], curves[1], rtol=1e-4, atol=1e-5)
    assert torch.allclose(weights[0], weights[1], atol=2e-3)  # rounding of the fused kernel accumulates
    opt = build_optimizer(make_model(0), "adamw", 1e-3, 0.0, {}, fused=True)
    assert opt.defaults.get("fused") is True


def test_fused_is_refused_for_sgd():
    with pytest.raises(InputError, match="adam and adamw only"):
        build_optimizer(make_model(0), "sgd", 1e-3, 0.0, {}, fused=True)
    opt = build_optimizer(make_model(0), "sgd", 1e-3, 0.0, {}, fused=None)  # None = where available: not for SGD
    assert not opt.defaults.get("fused")


def test_compiled_forward_trains_the_models_own_weights(monkeypatch):
    """compile=True trains through torch.compile's wrapper; the weights that change (and are saved,
    restored and validated) are the model's own. The eager backend keeps the test fast; the loss
    curve equals the uncompiled run's."""
    calls = []
    real = torch.compile

    def eager_compile(model, **kw):
        calls.append(model)
        return real(model, backend="eager")

    monkeypatch.setattr(torch, "compile", eager_compile)
    data = make_data(20, seed=5)
    curves = []
    for compiled in (False, True):
        model = make_model(1)
        before = model.head.weight.detach().clone()
        fit = Trainer(model, "listnet", lr=0.05, epochs=2, batch_size=4, seed=0, precision="fp32", compile=compiled,
                      progress=False).fit(data, collate)
        assert not torch.equal(before, model.head.weight)
        assert all(not k.startswith("_orig_mod") for k in model.state_dict())
        curves.append([h["loss"] for h in fit.history if h["event"] == "train"])
    assert len(calls) == 1
    np.testing.assert_allclose(curves[0], curves[1], rtol=1e-5)
