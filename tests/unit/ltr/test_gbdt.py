"""LambdaMART (LightGBM): learning, persistence, determinism, validation-only search, ltr cv CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rankstack.errors import InputError
from tests.fixtures.letor import synthetic


# LambdaMART ----------------------------------------------------------------------------------------


def _fitted(**kw):
    from rankstack.ltr.gbdt import LambdaMART

    train, valid = synthetic(40, seed=1), synthetic(12, seed=2, prefix="v")
    return LambdaMART(num_boost_round=30, early_stopping_rounds=10, min_data_in_leaf=5, **kw).fit(train, valid)


def test_lambdamart_learns_and_round_trips(tmp_path: Path) -> None:
    from rankstack.evaluate import evaluate
    from rankstack.ltr.gbdt import LambdaMART

    model = _fitted()
    test = synthetic(12, seed=3, prefix="t")
    run = model.predict(test)
    assert evaluate(run, test.qrels(), ["nDCG@10"]).mean["nDCG@10"] > 0.5
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "model.txt").read_text().startswith("tree")
    loaded = LambdaMART.load(tmp_path / "m")
    np.testing.assert_allclose(loaded.predict_scores(test), model.predict_scores(test))
    # a changed model file is refused
    path = tmp_path / "m" / "model.txt"
    path.write_text(path.read_text().replace("num_leaves", "num_leaves ", 1))
    with pytest.raises(InputError, match="checksum"):
        LambdaMART.load(tmp_path / "m")


def test_lambdamart_is_deterministic_and_checks_input() -> None:
    from rankstack.ltr.gbdt import LambdaMART

    test = synthetic(5, seed=4, prefix="t")
    np.testing.assert_array_equal(_fitted(seed=3).predict_scores(test), _fitted(seed=3).predict_scores(test))
    with pytest.raises(InputError, match="did you mean 'num_leaves'"):
        LambdaMART(num_leaf=7)
    with pytest.raises(InputError, match="not trained"):
        LambdaMART().predict(test)
    with pytest.raises(InputError, match="needs a validation set"):
        LambdaMART(tune=True).fit(synthetic(5))
    with pytest.raises(InputError, match="features"):
        _fitted().predict(synthetic(3, n_features=4))


def test_lambdamart_search_uses_validation_only() -> None:
    model = _fitted(tune=True, grid={"num_leaves": [3, 7], "learning_rate": [0.05, 0.1]}, max_trials=3)
    assert len(model.trials) == 3
    best = max(model.trials, key=lambda t: t.valid_ndcg10)
    assert {k: model.tree_params[k] for k in best.params} == best.params


# cross-validation and CLI ------------------------------------------------------------------------------
def test_cli_ltr_cv_json_shape(letor_dir: Path, tmp_path: Path, capsys) -> None:
    from rankstack.cli import main

    out = tmp_path / "cv.json"
    spec = "lambdamart(num_boost_round=20, min_data_in_leaf=5)"
    assert main(["ltr", "cv", "--folds", str(letor_dir), "--model", spec, "--json", str(out)]) == 0
    payload = json.loads(out.read_text())
    for m in ("nDCG@1", "nDCG@3", "nDCG@5", "nDCG@10", "AP"):
        assert 0 <= payload[m] <= 1
    assert len(payload["folds"]) == 5
    assert [f["test"] for f in payload["folds"]] == ["S1", "S2", "S3", "S4", "S5"]
    assert payload["no_relevant_queries"] == 15  # 3 of 12 queries per partition
    text = capsys.readouterr().out
    assert "scores 0" in text and "15 of 60" in text


def test_cli_ltr_cv_bad_model(letor_dir: Path, capsys) -> None:
    from rankstack.cli import main

    assert main(["ltr", "cv", "--folds", str(letor_dir), "--model", "{nope"]) == 2
    assert "JSON specs are no longer accepted" in capsys.readouterr().err
    assert main(["ltr", "cv", "--folds", str(letor_dir), "--model", "lambdamrt"]) == 2
    assert "did you mean 'lambdamart'" in capsys.readouterr().err
