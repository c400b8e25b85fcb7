"""recipes.ultr: study TOML keys = config fields, registry did-you-mean, train/study on tiny data."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from rankstack.errors import InputError, UnknownComponentError
from rankstack.recipes.ultr import StudyConfig, TrainConfig, load_config

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "ultr_mq2008.toml"


def test_example_study_file_loads():
    cfg = load_config(EXAMPLE)
    assert cfg.etas == [1.0, 2.0] and cfg.sessions == 100_000 and cfg.fit_config().hidden == ()
    assert cfg.estimators == ["naive", "ips-oracle", "ips-swap", "dla", "rem"]
    d = cfg.to_dict()
    assert d["fit"]["epochs"] == 60 and d["fit"]["lr"] == 0.01 and d["production"] == "lambdamart"


@pytest.mark.parametrize("text, message", [
    ("sesions = 10\n", "unknown setting 'sesions' (did you mean 'sessions'?)"),
    ('estimators = ["dla", "ipss"]\n', "unknown study estimator 'ipss'; did you mean 'ips-swap'"),
    ('production = "best"\n', "setting 'production' must be one of"),
    ("sessions = 'many'\n", "setting 'sessions' must be an integer"),
    ('click_model = "pbn"\n', "did you mean 'pbm'"),
    ("[fit]\nepoch = 3\n", "unknown training setting"),
])
def test_study_file_errors_name_the_file(tmp_path: Path, text: str, message: str):
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(InputError) as err:
        load_config(bad)
    assert message in str(err.value) and err.value.path == str(bad)


def test_study_learners_and_train_estimator_use_the_one_did_you_mean():
    with pytest.raises(UnknownComponentError, match="did you mean 'dla'"):
        StudyConfig(estimators=["dlaa"])
    with pytest.raises(UnknownComponentError, match="did you mean 'dla'"):
        TrainConfig(clicks=Path("c.jsonl"), folds=["x"], estimator="dlaa")


def test_cli_study_flags_override_the_file(tmp_path: Path, monkeypatch):
    from rankstack.cli import build_parser
    from rankstack.recipes import ultr

    seen = {}
    monkeypatch.setattr(ultr, "run", lambda config, **kw: seen.setdefault("config", config) and pytest.skip())
    args = build_parser().parse_args(["ultr", "study", "--config", str(EXAMPLE), "--etas", "2", "--fold-ids", "1",
                                      "--out", str(tmp_path / "o")])
    with pytest.raises(pytest.skip.Exception):
        args.func(args)
    cfg = seen["config"]
    assert cfg.etas == [2.0] and cfg.fold_ids == [1] and cfg.sessions == 100_000 and cfg.out == tmp_path / "o"


def test_study_and_train_on_tiny_folds(letor_folder: Path, tmp_path: Path, one_torch_thread):
    pytest.importorskip("torch")
    pytest.importorskip("lightgbm")
    from rankstack.recipes import clicks, ultr

    cfg = StudyConfig(folds=[str(letor_folder)], fold_ids=[2], etas=[1.0], sessions=400, intervention_sessions=400,
                      production_fraction=0.1, estimators=["naive", "ips-swap", "dla"],
                      fit={"epochs": 3, "em_iterations": 2}, out=tmp_path / "study")
    outcome = ultr.run(cfg)
    summary = outcome.payload["summary"]["1.0"]
    assert set(summary["ndcg"]) == {"production", "full-info", "naive", "ips-swap", "dla"}
    assert (tmp_path / "study" / "report.md").is_file() and (tmp_path / "study" / "results.json").is_file()
    assert json.loads((tmp_path / "study" / "results.json").read_text())["config"]["fit"]["epochs"] == 3
    with pytest.raises(InputError, match="fold\\(s\\) \\[7\\] do not exist"):
        ultr.run(dataclasses.replace(cfg, fold_ids=[7]))

    log = tmp_path / "clicks.jsonl"
    clicks.run(clicks.SimulateConfig(folds=[str(letor_folder)], out=log, sessions=300, interventions=300,
                                     production_fraction=0.1))
    res = ultr.run_train(TrainConfig(clicks=log, folds=[str(letor_folder)], estimator="ips", propensities="swap",
                                     epochs=3, json=tmp_path / "ips.json")).result
    assert res["fold"] == 1 and len(res["propensities"]) == 10 and res["propensities"][0] == 1.0
    assert json.loads((tmp_path / "ips.json").read_text())["nDCG@10"] == res["nDCG@10"]
    with pytest.raises(InputError, match="not 'logged', 'swap' or numbers"):
        ultr.run_train(TrainConfig(clicks=log, folds=[str(letor_folder)], estimator="ips", propensities="x1"))


def test_study_output_never_replaces_a_foreign_folder(tmp_path, letor_folder):
    from rankstack.recipes.ultr import StudyConfig, run

    foreign = tmp_path / "thesis"
    foreign.mkdir()
    (foreign / "report.md").write_text("my own report")
    cfg = StudyConfig(folds=[str(letor_folder)], out=foreign)
    with pytest.raises(InputError, match="is not a rankstack artefact; refusing"):
        run(cfg)
    assert (foreign / "report.md").read_text() == "my own report"
