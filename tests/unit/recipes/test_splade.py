"""SPLADE training recipe: a tiny end-to-end run (tiny MLM student, tiny cross-encoder teacher), the
objective's regulariser arithmetic, the ensemble teacher's normalisation, config checks and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("scipy")

from rankstack.errors import InputError  # noqa: E402
from rankstack.losses.flops import flops, idf_flops  # noqa: E402
from rankstack.recipes.splade import SpladeTrainConfig, run  # noqa: E402
from rankstack.recipes.splade_fit import SpladeObjective, ensemble_labels  # noqa: E402
from tests.fixtures.beir import write_beir  # noqa: E402
from tests.fixtures.models import make_tiny_bert  # noqa: E402
from tests.unit.encode.test_splade import make_tiny_mlm  # noqa: E402


@pytest.mark.parametrize("inference_free,regulariser", [(True, "idf-flops"), (False, "flops")])
def test_tiny_training_run_end_to_end(tmp_path, one_torch_thread, inference_free, regulariser):
    coll = write_beir(tmp_path / "tiny")
    student = make_tiny_mlm(tmp_path / "student")
    teacher = make_tiny_bert(tmp_path / "teacher", head=True)
    cfg = SpladeTrainConfig(collection=str(coll), out=tmp_path / "model", split="test", base_model=str(student),
                            teacher_model=str(teacher), inference_free=inference_free, regulariser=regulariser,
                            n_negatives=2, validation=1, epochs=2, batch_size=1, lr=1e-3, precision="fp32",
                            threads=1, cache_dir=tmp_path / "cache", report=tmp_path / "report.json")
    report = run(cfg, progress=False)
    assert report.steps >= 2 and report.lists >= 2 and report.validation_queries == 1
    assert report.best_validation is not None and len(report.validation_history) >= 1
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    assert manifest["kind"] == "splade-model" and manifest["params"]["inference_free"] is inference_free
    assert "model.safetensors" in manifest["files"] and "tokenizer.json" in manifest["files"]
    assert json.loads((tmp_path / "report.json").read_text())["regulariser"] == regulariser
    # the teacher's scores were cached: a second run does not load the teacher again
    assert any(p.name.startswith("teacher-") for p in (tmp_path / "cache" / "splade").iterdir())
    from rankstack.registry import Context, build
    from rankstack.data.beir import Collection

    ctx = Context(collection=Collection(coll), cache_dir=tmp_path / "cache")
    name = "splade_if" if inference_free else "splade"
    stage = build({"name": name, "args": {"model": str(tmp_path / "model"), "precision": "fp32"}}, context=ctx)
    assert len(stage(Collection(coll).queries("test"))) > 0
    # a changed weight file is refused when the model is loaded
    weights = tmp_path / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    from rankstack.encode.splade import SpladeEncoder

    with pytest.raises(InputError, match="checksum"):
        SpladeEncoder(tmp_path / "model")


class _Module:
    def __init__(self, d, q):
        self.doc_reps, self.query_reps = d, q


def test_objective_adds_ramped_regularisers():
    d = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 2.0]])
    q = torch.tensor([[1.0, 1.0, 0.0]])
    idf = np.array([1.0, 2.0, 0.5], dtype=np.float32)
    step = {"s": 5}
    rank = lambda s, y, m, w: torch.tensor(1.0)  # noqa: E731
    obj = SpladeObjective(rank, _Module(d, q), "idf-flops", lambda_d=0.1, lambda_q=0.2, warmup_steps=10,
                          step_fn=lambda: step["s"], idf=idf)
    got = float(obj(None, None, None))
    ramp = (5 / 10) ** 2
    expected = 1.0 + 0.1 * ramp * float(idf_flops(d, torch.tensor(idf))) + 0.2 * ramp * float(flops(q))
    assert got == pytest.approx(expected, rel=1e-6)
    step["s"] = 50
    plain = SpladeObjective(rank, _Module(d, None), "flops", 0.1, 0.2, 10, lambda: step["s"], None)
    assert float(plain(None, None, None)) == pytest.approx(1.0 + 0.1 * float(flops(d)), rel=1e-6)
    assert plain.spec()["args"]["regulariser"] == "flops"


def test_ensemble_labels_normalise_each_teacher_per_list():
    dense = np.array([0.2, 0.4, 0.3])
    sparse = np.array([10.0, 30.0, 50.0])  # another scale: it must not dominate
    np.testing.assert_allclose(ensemble_labels([dense, sparse]), [0.0, 1.5, 1.5])  # [0, 1, .5] + [0, .5, 1]


def test_config_checks(tmp_path):
    with pytest.raises(InputError, match="idf-flops is defined for inference-free"):
        SpladeTrainConfig(collection="x", out=tmp_path, regulariser="idf-flops")
    with pytest.raises(InputError, match="lambda-d"):
        SpladeTrainConfig(collection="x", out=tmp_path, lambda_d=-1.0)


def test_cli_help_and_one_line_error(tmp_path, capsys):
    from tests.unit.cli.clitools import run_cli

    code, out, _ = run_cli(["train", "splade", "--help"], capsys)
    assert code == 0
    for flag in ("--inference-free", "--regulariser", "--lambda-d", "--lambda-q", "--time-budget", "--teacher"):
        assert flag in out
    code, _, err = run_cli(["train", "splade", "--collection", "x", "--out", str(tmp_path / "m"),
                            "--regulariser", "idf-flops"], capsys)
    assert code == 2
    assert err.strip().count("\n") == 0 and "inference-free" in err
