"""recipes.clicks: one click simulation, one metadata spelling, flags from the config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rankstack.errors import InputError
from rankstack.recipes.clicks import SimulateConfig, click_model_from, run, swap_path

pytest.importorskip("lightgbm")


def test_click_model_spec_syntax():
    assert click_model_from("dcm(continuation=0.3)").continuation == (0.3,)
    assert click_model_from("pbm", eta=2.0).eta == 2.0
    assert click_model_from("pbm(eta=2)", eps=0.2).spec()["args"]["eps"] == 0.2
    with pytest.raises(InputError, match="eta"):
        SimulateConfig(folds=["x"], out=Path("c.jsonl"), eta=-1.0)
    with pytest.raises(InputError, match="sessions"):
        SimulateConfig(folds=["x"], out=Path("c.jsonl"), sessions=0)


def test_simulate_writes_log_meta_and_swap_log(letor_folder: Path, tmp_path: Path):
    from rankstack.unbiased.clicklog import read_clicklog, read_meta

    out = tmp_path / "clicks.jsonl"
    res = run(SimulateConfig(folds=[str(letor_folder)], out=out, sessions=300, interventions=200,
                             production_fraction=0.1, eta=2.0))
    log = read_clicklog(out)
    assert len(log) == 300 == res.sessions and log.propensities is not None
    meta = read_meta(out)
    assert "true_relative_propensities" not in meta  # one spelling of the key, the study's
    assert meta["true_propensities"][0] == 1.0 and len(meta["true_propensities"]) == 10
    assert meta["click_model"] == {"name": "pbm", "args": {**meta["click_model"]["args"], "eta": 2.0}}
    assert set(meta["top1"]) == set(log.qids.tolist()) and meta["sessions"] == 300
    assert len(read_clicklog(swap_path(out))) == 200 and read_meta(swap_path(out))["sessions"] == 200
    again = tmp_path / "again.jsonl"
    run(SimulateConfig(folds=[str(letor_folder)], out=again, sessions=300, production_fraction=0.1, eta=2.0))
    assert again.read_bytes() == out.read_bytes()  # seeded


def test_study_and_command_simulate_the_same_clicks(letor_folder: Path, tmp_path: Path):
    """The study and 'clicks simulate' share one simulation: same seeds, same sessions."""
    import numpy as np

    from rankstack.ltr.data import letor_folds
    from rankstack.unbiased.clicklog import read_clicklog
    from rankstack.unbiased.click_models import make_click_model
    from rankstack.unbiased.study import simulate_clicks

    out = tmp_path / "c.jsonl"
    run(SimulateConfig(folds=[str(letor_folder)], out=out, sessions=100, production_fraction=0.1, seed=3))
    sim = simulate_clicks(letor_folds(letor_folder)[0], make_click_model("pbm"), sessions=100,
                          production_fraction=0.1, seed=3)
    logged = read_clicklog(out)
    assert np.array_equal(logged.clicks, sim.log.clicks) and np.array_equal(logged.docids, sim.log.docids)


def test_cli_flags_and_errors(letor_folder: Path, tmp_path: Path, capsys):
    from rankstack.cli import main

    out = tmp_path / "c.jsonl"
    assert main(["clicks", "simulate", "--folds", str(letor_folder), "--model", "dcm(continuation=0.4)",
                 "--sessions", "50", "--production-fraction", "0.1", "--no-propensities", "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["sessions"] == 50
    assert json.loads(out.with_name(out.name + ".meta.json").read_text())["click_model"]["args"]["continuation"] == [0.4]
    assert main(["clicks", "simulate", "--folds", str(letor_folder), "--model", "pbn", "--out", str(out)]) == 2
    assert "did you mean 'pbm'" in capsys.readouterr().err
    assert main(["clicks", "simulate", "--folds", str(letor_folder), "--fold", "9", "--sessions", "5",
                 "--out", str(out)]) == 2
    assert "fold 9 does not exist" in capsys.readouterr().err
    assert main(["clicks", "simulate", "--folds", str(letor_folder), "--out", str(letor_folder / "S2.txt")]) == 2
    capsys.readouterr()
