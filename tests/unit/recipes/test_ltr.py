"""recipes.ltr: one spec syntax for --model, flags from the config, CV payload, old JSON refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rankstack.errors import InputError
from rankstack.pipeline.expression import format_component, parse_component
from rankstack.recipes.ltr import CVConfig, model_spec

pytest.importorskip("lightgbm")


def test_parse_component_grammar():
    assert parse_component("lambdamart") == ("lambdamart", {})
    assert parse_component("lambdamart(num_leaves=63, learning_rate=0.05)") == \
        ("lambdamart", {"num_leaves": 63, "learning_rate": 0.05})
    assert parse_component("mlp(loss=listnet(temperature=0.5), hidden=[64, 32])") == \
        ("mlp", {"loss": {"name": "listnet", "args": {"temperature": 0.5}}, "hidden": [64, 32]})
    assert parse_component("mlp(loss=listnet)") == ("mlp", {"loss": "listnet"})
    name, args = parse_component("mlp(loss=listnet(temperature=0.5), epochs=3)")
    assert parse_component(format_component(name, args)) == (name, args)
    for bad, message in (("a >> b", "not a single component"), ("mlp(3)", "keyword arguments only"),
                         ("mlp(loss=a+b)", "must be a literal"), ("mlp(", "cannot parse"), ("  ", "empty")):
        with pytest.raises(InputError, match=message):
            parse_component(bad)


def test_old_json_model_shows_new_spelling():
    with pytest.raises(InputError) as err:
        model_spec('{"name": "mlp", "args": {"loss": "listnet", "epochs": 30}}')
    assert "JSON specs are no longer accepted" in err.value.problem
    assert err.value.fix == "write \"mlp(loss='listnet', epochs=30)\""
    with pytest.raises(InputError, match="no longer accepted"):
        CVConfig(folds=["x"], models=["{nope"])


def test_cli_cv_model_spec_and_json(letor_folder: Path, tmp_path: Path, capsys):
    from rankstack.cli import main

    out = tmp_path / "cv.json"
    assert main(["ltr", "cv", "--folds", str(letor_folder), "--model",
                 "lambdamart(num_boost_round=20, min_data_in_leaf=5)", "--json", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert [f["test"] for f in payload["folds"]] == ["S1", "S2", "S3", "S4", "S5"]
    assert payload["model"] == "lambdamart" and 0 < payload["nDCG@10"] <= 1
    assert "model: lambdamart" in capsys.readouterr().out


def test_cli_cv_compares_repeated_models(letor_folder: Path, tmp_path: Path, capsys):
    from rankstack.cli import main

    out = tmp_path / "cmp.json"
    assert main(["ltr", "cv", "--folds", str(letor_folder), "--model", "lambdamart(num_boost_round=5)",
                 "--model", "lambdamart(num_boost_round=20)", "--json", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert set(payload) == {"lambdamart#1", "lambdamart#2", "comparison"}


def test_cli_cv_errors_are_one_line(letor_folder: Path, capsys):
    from rankstack.cli import main

    assert main(["ltr", "cv", "--folds", str(letor_folder), "--model", '{"name": "lambdamart"}']) == 2
    err = capsys.readouterr().err
    assert "no longer accepted" in err and "write 'lambdamart'" in err and err.count("\n") == 1
    assert main(["ltr", "cv", "--folds", str(letor_folder), "--model", "lambdamrt"]) == 2
    assert "did you mean 'lambdamart'" in capsys.readouterr().err
    assert main(["ltr", "cv", "--folds", str(letor_folder), "--threads", "-1"]) == 2
    assert "threads must be 0" in capsys.readouterr().err


def test_cv_json_refuses_to_overwrite_an_input(letor_folder: Path):
    from rankstack.recipes import ltr

    with pytest.raises(InputError):
        ltr.run(CVConfig(folds=[str(letor_folder)], json=letor_folder / "S1.txt"))


@pytest.mark.parametrize("verb", [["ltr", "cv"], ["ltr", "train"], ["clicks", "simulate"], ["ultr", "train"],
                                  ["ultr", "study"], ["experiment"], ["index"], ["retrieve"], ["evaluate"]])
def test_help_shows_defaults_from_the_configs(verb, capsys):
    """--help of every verb derived from a recipe config renders (a '%' in a default, e.g. 'bm25 % 100',
    must not break argparse's help formatting)."""
    from rankstack.cli import build_parser

    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*verb, "--help"])
    assert exit_.value.code == 0 and "default" in capsys.readouterr().out
