"""ULTR on the real MQ2008 fold 1 (skipped when the data is absent); about a minute on one core."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rankstack.data.beir import default_data_root

pytest.importorskip("torch")
pytest.importorskip("lightgbm")

MQ2008 = default_data_root() / "letor" / "MQ2008"
pytestmark = pytest.mark.skipif(not (MQ2008 / "S1.txt").is_file(), reason="MQ2008 not available")


@pytest.fixture(scope="module")
def fold1():
    from rankstack.ltr.data import letor_folds

    return letor_folds(MQ2008)[0]


def test_study_fold1_pbm(fold1):
    from rankstack.recipes.ultr import StudyConfig, run_fold

    cfg = StudyConfig(sessions=30_000, intervention_sessions=50_000, fit={"epochs": 40, "em_iterations": 20})
    r = run_fold(fold1, 1.0, cfg)
    ndcg = {k: v["nDCG@10"] for k, v in r["ndcg"].items()}
    full = ndcg["full-info"]
    assert 0.40 < full < 0.55  # trec_eval convention (no-relevant queries score 0) on MQ2008 S5
    for name in ("ips-oracle", "ips-swap", "dla", "rem"):
        assert ndcg[name] > 0.9 * full, (name, ndcg)
    true = np.array(r["true_propensities"])
    swap = np.array(r["propensities"]["ips-swap"])
    assert np.allclose(swap[:6], true[:6], rtol=0.3), swap
    for name in ("dla", "rem"):
        est = np.array(r["propensities"][name])
        assert est[0] == pytest.approx(1.0) and est[-1] < 0.4 and est[1] > est[5] > est[9], (name, est)


def test_cli_simulate_then_train(tmp_path):
    from rankstack.cli import main
    from rankstack.unbiased.clicklog import read_clicklog, read_meta

    out = tmp_path / "clicks.jsonl"
    assert main(["clicks", "simulate", "--folds", str(MQ2008), "--fold", "1", "--model", "pbm", "--eta", "2",
                 "--sessions", "20000", "--interventions", "20000", "--seed", "0", "--out", str(out)]) == 0
    log = read_clicklog(out)
    assert len(log) == 20_000 and log.max_length == 10 and log.propensities is not None
    meta = read_meta(out)
    assert meta["click_model"]["args"]["eta"] == 2.0 and len(meta["production_queries"]) == 5
    assert len(meta["true_propensities"]) == 10 and meta["true_propensities"][0] == 1.0
    assert (tmp_path / "clicks.swap.jsonl").is_file()
    # same seed, same log
    again = tmp_path / "again.jsonl"
    main(["clicks", "simulate", "--folds", str(MQ2008), "--fold", "1", "--eta", "2", "--sessions", "20000",
          "--seed", "0", "--out", str(again)])
    assert again.read_bytes() == out.read_bytes()

    for est, extra in (("dla", []), ("ips", ["--propensities", "swap"]), ("naive", [])):
        js = tmp_path / f"{est}.json"
        args = ["ultr", "train", "--clicks", str(out), "--folds", str(MQ2008), "--fold", "1", "--estimator", est,
                "--epochs", "30", "--json", str(js), *extra]
        if est == "dla":
            args += ["--out", str(tmp_path / "dla-model")]
        assert main(args) == 0
        res = json.loads(js.read_text())
        assert 0.3 < res["nDCG@10"] < 0.6 and res["fold"] == 1
    assert (tmp_path / "dla-model" / "manifest.json").is_file()
    from rankstack.ltr.gbdt import load_model

    model = load_model(tmp_path / "dla-model")
    assert model.n_features == 46


def test_cli_reports_bad_log_line(tmp_path, capsys):
    from rankstack.cli import main

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"qid": "10002", "docids": ["a", "b"], "clicks": [1]}\n')
    code = main(["ultr", "train", "--clicks", str(bad), "--folds", str(MQ2008), "--estimator", "naive"])
    assert code == 2
    err = capsys.readouterr().err
    assert "bad.jsonl:1" in err and "2 docids but 1 clicks" in err
