"""``rankstack rerank --precision``: auto measures the paths once (decision printed and cached), a
named path runs that path, and a bad value is one line on stderr."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.data.trec import read_run
from tests.fixtures.models import make_tiny_bert
from tests.unit.cli.clitools import run_cli

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_tiny_bert(tmp_path_factory.mktemp("cli_tinybert") / "model")


def rerank(model, out, *extra):
    return ["rerank", "--model", str(model), "--collection", "tiny", "--run", "good.run", "--out", out,
            "--max-length", "32", "--cache-dir", "cache", "--threads", "1", *extra]


def test_auto_measures_once_then_reuses_the_decision(ws, model, capsys):
    code, out, err = run_cli(rerank(model, "a.run", "--calibration-pairs", "6"), capsys)
    assert code == 0, err
    assert "inference path:" in out and "measured now" in out and "fp32" in out
    assert "Pearson" in out and "nDCG@10" in out  # the train split's judged query was used
    files = list((ws / "cache" / "inference").glob("reranker-*.json"))
    assert len(files) == 1
    code, out2, err = run_cli(rerank(model, "b.run", "--calibration-pairs", "6"), capsys)
    assert code == 0, err
    assert "cached decision" in out2
    a, b = read_run(ws / "a.run"), read_run(ws / "b.run")
    assert a.docids.tolist() == b.docids.tolist()
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-6)


def test_a_named_path_runs_that_path(ws, model, capsys):
    code, out, err = run_cli(rerank(model, "f.run", "--precision", "fp32"), capsys)
    assert code == 0, err
    assert "fp32" in out
    code, out, err = run_cli(rerank(model, "o.run", "--precision", "onnx-fp32"), capsys)
    assert code == 0, err
    assert "onnx-fp32" in out and "inference path:" not in out
    np.testing.assert_allclose(read_run(ws / "o.run").scores, read_run(ws / "f.run").scores, atol=1e-4)


def test_bad_precision_and_pairs_are_one_line(ws, model, capsys):
    code, _, err = run_cli(rerank(model, "x.run", "--precision", "fp8"), capsys)
    assert code == 2 and "fp8" in err
    code, _, err = run_cli(rerank(model, "x.run", "--calibration-pairs", "0"), capsys)
    assert code == 2 and "--calibration-pairs" in err and "Traceback" not in err
