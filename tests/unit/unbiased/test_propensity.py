"""Propensity estimation from swap interventions; the propensity table and plot."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.unbiased.click_models import PositionBasedModel, pbm_examination
from rankstack.unbiased.propensity import (
    estimate_swap_propensities,
    plot_propensities,
    propensity_table,
    simulate_swap_interventions,
)


# ----------------------------------------------------------------------------- propensity estimation
def test_swap_interventions_recover_relative_propensities():
    rng = np.random.default_rng(0)
    q = 200
    labels = rng.integers(0, 3, size=(q, 10))
    docids = np.array([[f"q{i}d{j}" for j in range(10)] for i in range(q)])
    lengths = np.full(q, 10)
    lengths[:50] = 6  # short lists: arms beyond 6 compare against long-list queries only
    docids[:50, 6:] = ""
    m = PositionBasedModel(eta=1.0)
    qids = [f"q{i}" for i in range(q)]
    log = simulate_swap_interventions(m, qids, docids, labels, lengths, 300_000, rng)
    top1 = {qq: d[0] for qq, d in zip(qids, docids)}
    est, counts = estimate_swap_propensities(log, top1, 10)
    true = m.examination(10) / m.examination(10)[0]
    assert est[0] == pytest.approx(1.0)
    assert np.allclose(est, true, rtol=0.15, atol=0.02)
    assert counts.min() > 0
    # every session shows the original documents, only permuted
    assert sorted(log.docids[0, :log.lengths[0]].tolist()) == sorted(
        docids[qids.index(log.qids[0]), :log.lengths[0]].tolist())


def test_propensity_table_and_plot(tmp_path):
    true = pbm_examination(4)
    text = propensity_table(true, {"est": [1.0, 0.9, 0.7, 0.5]})
    assert "| 2 | 0.897 | 0.900 |" in text and "MAE" in text
    plot_propensities(true, {"est": [[1.0, 0.9, 0.7, 0.5], [1.0, 0.8, 0.6, 0.5]]}, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
