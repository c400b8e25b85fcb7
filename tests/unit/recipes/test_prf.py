"""recipes.prf through the CLI: flags come from NeuralPRFConfig; a bad --out is refused before work."""

from __future__ import annotations

from rankstack.cli import main


def test_train_neural_prf_refuses_an_output_inside_the_collection(tiny_collection, capsys):
    code = main(["train", "neural-prf", "--collection", str(tiny_collection), "--out", str(tiny_collection / "m")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "is inside the input" in err[0]
    assert not (tiny_collection / "m").exists()


def test_train_neural_prf_flags_are_type_checked(tiny_collection, capsys):
    code = main(["train", "neural-prf", "--collection", str(tiny_collection), "--depths", "3", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "depths must be ascending distinct positive integers" in err
