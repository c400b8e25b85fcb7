"""The ULTR study summary and its nDCG table."""

from __future__ import annotations

import pytest


# ----------------------------------------------------------------------------- study tables
def test_summarise_and_ndcg_table():
    from rankstack.unbiased.study import ndcg_table, summarise

    runs = [{"eta": 1.0, "fold": f, "true_propensities": [1.0, 0.5],
             "ndcg": {"full-info": {"nDCG@10": 0.5, "nDCG@10 (rel>0)": 0.7},
                      "naive": {"nDCG@10": 0.4 + 0.02 * f, "nDCG@10 (rel>0)": 0.6}},
             "propensities": {"dla": [1.0, 0.4 + 0.1 * f]}} for f in (1, 2)]
    s = summarise(runs)
    assert s["1.0"]["ndcg"]["naive"]["nDCG@10"] == pytest.approx(0.43)
    assert s["1.0"]["propensities"]["dla"] == pytest.approx([1.0, 0.55])
    assert "| naive | 0.4300" in ndcg_table(s)
