"""recipes.config: flags and TOML keys derived from one dataclass; type errors name the source."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from rankstack.errors import InputError
from rankstack.recipes.config import add_arguments, from_args, from_mapping, option, to_dict


@dataclass(frozen=True)
class Demo:
    collection: str = option(help="a collection")
    epochs: int = option(4, help="passes")
    lr: float = option(3e-5, help="learning rate")
    loss: Literal["listnet", "ranknet"] = option("listnet", help="loss")
    out: Path | None = option(None, help="output")
    shuffle: bool = option(True, help="shuffle")
    measures: list[str] = option(["nDCG@10"], help="measures")


def parse(argv):
    p = argparse.ArgumentParser()
    add_arguments(p, Demo)
    return from_args(Demo, p.parse_args(argv))


def test_defaults_come_from_the_dataclass_only():
    cfg = parse(["--collection", "scifact"])
    assert cfg == Demo(collection="scifact")
    assert cfg.measures == ["nDCG@10"]


def test_flags_convert_types():
    cfg = parse(["--collection", "c", "--epochs", "2", "--lr", "1e-4", "--loss", "ranknet",
                 "--out", "m", "--no-shuffle", "--measures", "AP", "R@100"])
    assert (cfg.epochs, cfg.lr, cfg.loss, cfg.out, cfg.shuffle) == (2, 1e-4, "ranknet", Path("m"), False)
    assert cfg.measures == ["AP", "R@100"]
    assert parse(["--collection", "c", "--out", "none"]).out is None


def test_bad_flag_value_exits_with_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        parse(["--collection", "c", "--epochs", "two"])
    assert exc.value.code == 2
    assert "--epochs must be an integer, got 'two'" in capsys.readouterr().err


def test_required_flag():
    with pytest.raises(SystemExit):
        parse([])


def test_mapping_uses_the_same_keys_and_checks_types():
    assert from_mapping(Demo, {"collection": "c", "epochs": 3}).epochs == 3
    with pytest.raises(InputError, match=r"x.toml: setting 'epochs' must be an integer, got '3'"):
        from_mapping(Demo, {"collection": "c", "epochs": "3"}, source="x.toml")
    with pytest.raises(InputError, match="must be an integer, got True"):
        from_mapping(Demo, {"collection": "c", "epochs": True})
    with pytest.raises(InputError, match=r"unknown setting 'epoch' \(did you mean 'epochs'\?\)"):
        from_mapping(Demo, {"collection": "c", "epoch": 3})
    with pytest.raises(InputError, match="missing required setting"):
        from_mapping(Demo, {"epochs": 3})
    with pytest.raises(InputError, match="one of 'listnet', 'ranknet'"):
        from_mapping(Demo, {"collection": "c", "loss": "bce"})


def test_to_dict_is_json_able():
    import json

    d = to_dict(Demo(collection="c", out=Path("m")))
    assert json.loads(json.dumps(d))["out"] == "m"


def test_help_with_percent_in_a_default():
    @dataclass(frozen=True)
    class Pipe:
        pipeline: str = option("bm25 % 100", help="a pipeline, e.g. 'a % 10'")

    p = argparse.ArgumentParser()
    add_arguments(p, Pipe)
    assert "bm25 % 100" in p.format_help()
