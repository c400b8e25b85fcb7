"""Unbiased learning to rank from (simulated) clicks.

* :mod:`~rankstack.unbiased.click_models` -- PBM, cascade and DCM users over a production ranker's top-k.
* :mod:`~rankstack.unbiased.clicklog` -- the JSONL click-log format (strict reader, atomic writer).
* :mod:`~rankstack.unbiased.propensity` -- propensity estimation by swap interventions, comparison
  with the simulator's truth.
* :mod:`~rankstack.unbiased.estimators` -- naive, IPS (oracle / estimated propensities), DLA and
  regression EM learners over LETOR features, all trained with the shared loss library.
* :mod:`~rankstack.unbiased.study` -- the end-to-end study (simulate, learn, evaluate, tabulate).

Nothing here imports torch or LightGBM at import time.
"""

from rankstack.unbiased.click_models import (
    CascadeModel,
    ClickModel,
    DependentClickModel,
    PositionBasedModel,
    make_click_model,
    pbm_examination,
    simulate_sessions,
)
from rankstack.unbiased.clicklog import ClickLog, read_clicklog, write_clicklog

__all__ = ["ClickModel", "PositionBasedModel", "CascadeModel", "DependentClickModel", "make_click_model",
           "pbm_examination", "simulate_sessions", "ClickLog", "read_clicklog", "write_clicklog"]
