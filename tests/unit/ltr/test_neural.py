"""Neural LTR scorers (MLP, self-attention): learning, persistence, masking, input checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rankstack.errors import InputError
from tests.fixtures.letor import synthetic


# neural scorers -------------------------------------------------------------------------------------
def _neural(arch: str, **kw):
    pytest.importorskip("torch")
    from rankstack.ltr.neural import NeuralRanker

    args = {"epochs": 8, "batch_size": 4, "lr": 1e-2, **kw}
    return NeuralRanker(arch, **args).fit(synthetic(24, seed=1), synthetic(8, seed=2, prefix="v"))


@pytest.mark.parametrize("arch,loss", [("mlp", "listnet"), ("attention", "lambdaloss"),
                                       ("mlp", "approxndcg")])
def test_neural_learns_and_round_trips(arch: str, loss: str, tmp_path: Path) -> None:
    from rankstack.evaluate import evaluate
    from rankstack.ltr.neural import NeuralRanker

    model = _neural(arch, loss=loss)
    test = synthetic(12, seed=3, prefix="t")
    assert evaluate(model.predict(test), test.qrels(), ["nDCG@10"]).mean["nDCG@10"] > 0.5
    model.save(tmp_path / "m")
    loaded = NeuralRanker.load(tmp_path / "m")
    np.testing.assert_allclose(loaded.predict_scores(test), model.predict_scores(test), rtol=1e-6)
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(InputError, match="checksum"):
        NeuralRanker.load(tmp_path / "m")


def test_attention_masks_padding_and_ignores_order() -> None:
    torch = pytest.importorskip("torch")
    model = _neural("attention", epochs=1)
    x = torch.rand(1, 6, 5)
    mask = torch.tensor([[True] * 4 + [False] * 2])
    base = model.module((x, mask))[0, :4]
    x2 = x.clone()
    x2[0, 4:] = 100.0  # garbage in padding must not change real scores
    torch.testing.assert_close(model.module((x2, mask))[0, :4], base)
    perm = torch.tensor([2, 0, 3, 1, 4, 5])
    torch.testing.assert_close(model.module((x[:, perm], mask))[0, :4], base[perm[:4]])


def test_neural_checks_input() -> None:
    pytest.importorskip("torch")
    from rankstack.ltr.neural import NeuralRanker

    with pytest.raises(InputError, match="unknown argument"):
        NeuralRanker("mlp", d_model=3)
    with pytest.raises(InputError, match="architecture"):
        NeuralRanker("cnn")
    with pytest.raises(InputError, match="epochs"):
        NeuralRanker("mlp", epochs=0)
    with pytest.raises(InputError, match="not trained"):
        NeuralRanker("mlp").predict(synthetic(2))
