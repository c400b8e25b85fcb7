"""PG-Rank (Gao et al. 2023) as the loss of the neural LETOR scorers: learns, repeats under a seed,
and runs through ``rankstack ltr cv``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.letor import synthetic

pytest.importorskip("torch")


def _fit(**kw):
    from rankstack.ltr.neural import NeuralRanker

    args = {"loss": {"name": "pgrank", "args": {"samples": 8}}, "epochs": 10, "batch_size": 4, "lr": 1e-2,
            "patience": 10, **kw}
    return NeuralRanker("mlp", **args).fit(synthetic(24, seed=1), synthetic(8, seed=2, prefix="v"))


def test_pgrank_trains_an_mlp_past_its_initial_weights() -> None:
    from rankstack.evaluate import evaluate

    test = synthetic(16, seed=3, prefix="t")
    trained = evaluate(_fit().predict(test), test.qrels(), ["nDCG@10"]).mean["nDCG@10"]
    untrained = evaluate(_fit(lr=1e-9, epochs=1).predict(test), test.qrels(), ["nDCG@10"]).mean["nDCG@10"]
    assert trained > 0.5 and trained > untrained + 0.05


def test_pgrank_training_repeats_under_a_seed() -> None:
    test = synthetic(6, seed=4, prefix="t")
    a, b = _fit(epochs=3), _fit(epochs=3)
    np.testing.assert_array_equal(a.predict_scores(test), b.predict_scores(test))
    c = _fit(epochs=3, seed=1)
    assert not np.array_equal(a.predict_scores(test), c.predict_scores(test))


def test_ltr_cv_accepts_pgrank(letor_dir: Path, tmp_path: Path) -> None:
    from rankstack.cli import main

    out = tmp_path / "cv.json"
    code = main(["ltr", "cv", "--folds", str(letor_dir), "--model", "mlp(loss=pgrank, epochs=3, batch_size=4)",
                 "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert len(result["folds"]) == 5 and 0.0 <= result["nDCG@10"] <= 1.0
