from __future__ import annotations

from rankstack.robust.report import render_html, to_csv


def test_csv_and_html():
    pert = [{"collection": "c", "pipeline": "bm25", "perturbation": "casing", "queries": 3, "changed_queries": 1.0,
             "clean": 0.5, "perturbed": 0.4, "mean_drop": 0.1, "std_drop": 0.05, "share_drop_gt_0.1": 0.33}]
    assert to_csv(pert).splitlines()[0].startswith("collection,pipeline,perturbation")
    cert = [{"collection": "c", "queries": 2, "ndcg_raw": 0.5, "ndcg_smoothed": 0.4, "ndcg_cost": 0.1,
             "certified_share": {"0": 1.0, "1": 0.5}, "certified_share_point": {"0": 1.0, "1": 0.7}}]
    rows = [{"collection": "c", "victim": "bm25", "rank_before": 60, "rank_after": 3}]
    page = render_html({"perturbation": pert, "certify": {"summary": cert},
                        "attack": {"summary": [], "rows": rows}, "note": "<x>"})
    assert page.count("<svg") == 3 and "&lt;x&gt;" in page and "<script" not in page
