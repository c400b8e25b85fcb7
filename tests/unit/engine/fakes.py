"""Scorers for the engine tests, importable by Ray workers (``{"factory": "tests.unit.engine.fakes:..."}``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class FlakyScorer:
    """Scores by length; fails on pairs whose document contains ``fail_on``: the first ``fail_times``
    attempts of each such batch fail (counted in files under ``marker_dir``, shared across processes)."""

    def __init__(self, marker_dir: str, fail_on: str = "BOOM", fail_times: int = 1) -> None:
        self.marker_dir, self.fail_on, self.fail_times = Path(marker_dir), fail_on, fail_times

    def score_pairs(self, queries, docs):
        if any(self.fail_on in d for d in docs):
            self.marker_dir.mkdir(parents=True, exist_ok=True)
            attempt = len(list(self.marker_dir.iterdir()))
            (self.marker_dir / f"attempt{attempt}").write_text("x")
            if attempt < self.fail_times:
                raise RuntimeError(f"injected failure #{attempt + 1}")
        return np.array([len(q) + 0.5 * len(d) for q, d in zip(queries, docs)], dtype=np.float64)
