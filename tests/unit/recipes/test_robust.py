"""The robustness recipe: TOML configs, and a whole study on a tiny synthetic collection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rankstack.errors import InputError, UnknownComponentError
from rankstack.recipes.robust import AugmentConfig, RobustConfig, load_config, run, run_augment
from rankstack.storage import read_manifest
from tests.fixtures.beir import write_topic_corpus
from tests.fixtures.models import make_tiny_bert

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.mark.parametrize("name", ["robust_perturb.toml", "robust_attack.toml", "robust_certify.toml",
                                  "robust_shift.toml"])
def test_examples_load(name):
    assert isinstance(load_config(EXAMPLES / name), RobustConfig)


def test_bad_settings_name_the_file(tmp_path):
    p = tmp_path / "r.toml"
    p.write_text('victim = ["bm25"]\n')
    with pytest.raises(InputError, match="did you mean 'victims'"):
        load_config(p)
    p.write_text('victims = ["bm26"]\n')
    with pytest.raises(InputError, match="unknown victim"):
        load_config(p)
    with pytest.raises(UnknownComponentError):
        RobustConfig(perturbations=["tpyo_swap"])
    with pytest.raises(InputError, match="paraphrase"):
        RobustConfig(perturbations=["paraphrase"])
    with pytest.raises(InputError, match="target_ranks"):
        RobustConfig(target_ranks=[5, 100])
    p.write_text('smoothing_bound = "chernoff"\n')
    with pytest.raises(InputError, match="unknown smoothing_bound 'chernoff'"):
        load_config(p)
    with pytest.raises(InputError, match="smoothing_alpha"):
        RobustConfig(smoothing_alpha=1.5)


def test_tiny_study_writes_a_report_artefact(tmp_path, one_torch_thread):
    (tmp_path / "data" / "topics").mkdir(parents=True)
    coll = write_topic_corpus(tmp_path / "data" / "topics", n_docs=80, seed=0, noise_vocab=40, noise_tokens=12, query_shift=1)
    ce = make_tiny_bert(tmp_path / "ce")
    out = tmp_path / "report"
    cfg = RobustConfig(collections=[str(coll)], shift_collections=[str(coll)], cache_dir=None, data_root=tmp_path / "data",
                       pipelines={"bm25": "bm25 % 100"}, queries=None, perturbations=["typo_drop", "stopwords"],
                       victims=["bm25"], reranker_model=ce, attack_queries=3, imitation_queries=5,
                       imitation_depth=10, imitation_epochs=1, target_ranks=[11, 40], budgets=[0.1, 0.3],
                       certify_queries=2, certify_depth=12, smoothing_samples=4, out=out)
    outcome = run(cfg, progress=False)
    payload = json.loads((out / "results.json").read_text())
    assert {r["perturbation"] for r in payload["perturbation"]} == {"typo_drop", "stopwords"}
    assert payload["shift"][0]["pipeline"] == "bm25"
    rows = payload["attack"]["rows"]
    assert rows and all(r["edits"] <= r["allowed"] for r in rows)
    assert all(11 <= r["list_rank"] <= 40 for r in rows)
    cert = payload["certify"]["summary"][0]
    assert set(cert["certified_share"]) == {"0", "1", "2", "3"}
    assert {k: cert["smoothing"][k] for k in ("bound", "alpha", "samples", "drop_masked")} == {
        "bound": "best", "alpha": 0.05, "samples": 4, "drop_masked": True}
    assert payload["attack"]["smoothing"]["drop_masked"] is True
    for f in ("report.html", "perturbation.csv", "attack_rows.csv", "certify_documents.csv"):
        assert (out / f).is_file()
    assert read_manifest(out, "robust-report", (1,))["kind"] == "robust-report"
    assert "report.html" in outcome.to_text()
    with pytest.raises(InputError):  # an earlier report is replaced only with overwrite
        run(cfg, ("shift",), progress=False)


def test_augmented_collection(tmp_path, tiny_collection):
    out = run_augment(AugmentConfig(collection=str(tiny_collection), out=tmp_path / "aug", split="test",
                                    perturbations=["typo_drop", "word_order"]))
    from rankstack.data.beir import Collection

    aug = Collection(out)
    qids = aug.queries("test").qids
    assert "q1~typo_drop" in qids and "q1~word_order" in qids
    assert aug.qrels("test").restrict(["q1~typo_drop"]).docids.tolist() == \
        aug.qrels("test").restrict(["q1"]).docids.tolist()
    assert read_manifest(out, "robust-augmented-collection", (1,))["params"]["added_queries"] > 0


def test_cli_bad_config_is_one_line(tmp_path, capsys):
    from rankstack.cli import main

    bad = tmp_path / "r.toml"
    bad.write_text("budgets = [2.0]\n")
    assert main(["robust", "attack", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "budget" in err
    assert not (tmp_path / "o").exists()
