"""Fusion: hand-computed RRF / CombSUM / CombMNZ / linear values, the fuse() Stage and expressions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rankstack.errors import InputError
from rankstack.pipeline.expression import parse_pipeline
from rankstack.pipeline.stage import FunctionStage, Stage
from rankstack.registry import register
from rankstack.retrieve.fusion import comb_mnz, comb_sum, fuse, fuse_runs, linear, normalise, rrf
from rankstack.types import Queries, Run

A = Run.from_dict({"q1": {"d1": 3.0, "d2": 2.0, "d3": 1.0}, "q2": {"d1": 5.0}}, name="a")
B = Run.from_dict({"q1": {"d3": 0.9, "d4": 0.5, "d1": 0.1}, "q2": {"d2": 1.0, "d1": 0.0}}, name="b")


def test_rrf_hand_computed():
    fused = rrf([A, B], k=60).to_dict()
    # q1: d1 ranks 1 and 3, d3 ranks 3 and 1, d2 rank 2 in A only, d4 rank 2 in B only
    assert fused["q1"]["d1"] == pytest.approx(1 / 61 + 1 / 63)
    assert fused["q1"]["d3"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["q1"]["d2"] == pytest.approx(1 / 62)
    assert fused["q1"]["d4"] == pytest.approx(1 / 62)
    assert fused["q2"] == pytest.approx({"d1": 1 / 61 + 1 / 62, "d2": 1 / 61})
    # custom k and weights
    f2 = rrf([A, B], k=1, weights=[2.0, 1.0]).to_dict()
    assert f2["q1"]["d1"] == pytest.approx(2 / 2 + 1 / 4)


def test_rrf_tie_order_is_canonical():
    fused = rrf([A, B])
    docs, scores = fused.for_query("q1")
    # d1 and d3 tie: canonical order breaks ties by docid descending
    assert list(docs[:2]) == ["d3", "d1"]
    assert scores[0] == scores[1]


def test_minmax_and_zscore():
    mm = dict(zip(zip(A.qids, A.docids), normalise(A, "min-max")))
    assert mm[("q1", "d1")] == 1.0 and mm[("q1", "d2")] == 0.5 and mm[("q1", "d3")] == 0.0
    # a single (constant) score maps to 0: rankstack.normalize's one rule (as ranx and LETOR do)
    assert mm[("q2", "d1")] == 0.0
    z = dict(zip(zip(A.qids, A.docids), normalise(A, "z-score")))
    sd = math.sqrt(2 / 3)
    assert z[("q1", "d1")] == pytest.approx(1 / sd) and z[("q1", "d2")] == pytest.approx(0.0)
    assert z[("q2", "d1")] == 0.0


def test_combsum_combmnz_linear_hand_computed():
    s = comb_sum([A, B]).to_dict()
    # B q1 min-max: d3 1, d4 0.5, d1 0 ; A q1: d1 1, d2 .5, d3 0
    assert s["q1"] == pytest.approx({"d1": 1.0, "d2": 0.5, "d3": 1.0, "d4": 0.5})
    assert s["q2"] == pytest.approx({"d1": 0.0 + 0.0, "d2": 1.0})  # A's one-document q2 is constant: 0
    m = comb_mnz([A, B]).to_dict()
    assert m["q1"] == pytest.approx({"d1": 2.0, "d2": 0.5, "d3": 2.0, "d4": 0.5})
    assert m["q2"] == pytest.approx({"d1": 0.0, "d2": 1.0})
    li = linear([A, B], weights=[0.7, 0.3]).to_dict()
    assert li["q1"]["d1"] == pytest.approx(0.7) and li["q1"]["d4"] == pytest.approx(0.15)
    zs = fuse_runs([A, B], method="combsum", norm="z-score").to_dict()
    sd = math.sqrt(2 / 3)
    sdb = np.std([0.9, 0.5, 0.1])
    assert zs["q1"]["d1"] == pytest.approx(1 / sd + (0.1 - 0.5) / sdb)


@pytest.mark.slow
def test_against_ranx_when_installed():
    """ranx's numba JIT makes this take ~1-2 min on a busy CPU: marked slow."""
    ranx = pytest.importorskip("ranx")
    from ranx import Run as RRun
    from ranx import fuse as rfuse

    rng = np.random.default_rng(0)
    runs = []
    for name in ("x", "y", "z"):
        runs.append(Run.from_dict({f"q{q}": {f"d{d}": float(rng.normal()) for d in rng.choice(30, 12, replace=False)}
                                   for q in range(5)}, name=name))
    cases = [("rrf", {}, "rrf", None), ("combsum", {"norm": "min-max"}, "sum", "min-max"),
             ("combmnz", {"norm": "min-max"}, "mnz", "min-max")]
    for method, kw, rmethod, rnorm in cases:
        ours = fuse_runs(runs, method=method, **kw).to_dict()
        theirs = rfuse([RRun(r.to_dict()) for r in runs], method=rmethod, norm=rnorm or "min-max").to_dict()
        for q in ours:
            assert ours[q] == pytest.approx(theirs[q], abs=1e-9), method


def test_bad_input():
    with pytest.raises(InputError, match="unknown fusion method"):
        fuse_runs([A, B], method="borda")
    with pytest.raises(InputError, match="weights"):
        rrf([A, B], weights=[1.0])
    with pytest.raises(InputError, match="norm"):
        fuse_runs([A, B], method="rrf", norm="z-score")
    with pytest.raises(InputError, match="normalisation"):
        comb_sum([A, B], norm="softmax")
    with pytest.raises(InputError, match="at least two"):
        fuse(FunctionStage(lambda q: A))


@register("fusion_test_a", kind="retriever")
def _stage_a() -> FunctionStage:
    return FunctionStage(lambda q: A, name="fusion_test_a")


@register("fusion_test_b", kind="retriever")
def _stage_b() -> FunctionStage:
    return FunctionStage(lambda q: B, name="fusion_test_b")


def test_fuse_stage_and_expression():
    queries = Queries(("q1", "q2"), ("one", "two"))
    direct = fuse(FunctionStage(lambda q: A), FunctionStage(lambda q: B), method="rrf")(queries)
    parsed = parse_pipeline("fuse(fusion_test_a, fusion_test_b, method=rrf) % 2")
    out = parsed(queries)
    assert out.to_dict()["q1"] == pytest.approx({k: v for k, v in direct.to_dict()["q1"].items()
                                                 if k in ("d1", "d3")})
    assert out.queries is not None and len(out.query_ids) == 2
    assert "fuse(" in repr(parsed) and "method=rrf" in repr(parsed)
    lin = parse_pipeline("fuse(fusion_test_a, fusion_test_b, method=linear, weights=[0.7, 0.3])")(queries)
    assert lin.to_dict()["q1"]["d1"] == pytest.approx(0.7)


class _DeepStage(Stage):
    """Returns ``k`` documents per query (like a retriever with a default depth); ``at_least`` deepens."""

    def __init__(self, k: int = 1000, prefix: str = "d") -> None:
        self.k, self.prefix, self.name = k, prefix, f"deep{prefix}"

    def at_least(self, k: int) -> Stage:
        return self if k <= self.k else _DeepStage(k, self.prefix)

    def transform(self, inp):
        qids = [q for q in inp.qids for _ in range(self.k)]
        docs = [f"{self.prefix}{i}" for _ in inp.qids for i in range(self.k)]
        scores = [float(self.k - i) for _ in inp.qids for i in range(self.k)]
        return Run(np.array(qids), np.array(docs), np.array(scores))


def test_fusion_pushes_the_cutoff_to_every_input_and_its_depth():
    queries = Queries(("q1", "q2"), ("a", "b"))
    a, b = _DeepStage(prefix="a"), _DeepStage(prefix="b")
    stage = fuse(a, b, method="rrf")
    deep = (stage % 1500)(queries)
    assert [len(d) for _, d, _ in deep.groups()] == [1500, 1500]
    # both inputs were deepened: the 1500 documents come half from each input's 750 best
    assert sum(d.startswith("a") for d in deep.for_query("q1")[0].tolist()) == 750
    full = stage.at_least(1500)(queries)
    assert [len(d) for _, d, _ in full.groups()] == [3000, 3000]
    assert [s.k for s in stage.stages] == [1000, 1000]  # self unchanged
    limited = fuse(a, b, method="combsum", depth=100)
    assert limited.at_least(1500).depth == 1500 and limited.depth == 100
    assert [len(d) for _, d, _ in (limited % 1500)(queries).groups()] == [1500, 1500]
    assert limited.at_least(50) is limited  # already deep enough


@pytest.mark.parametrize("k", [float("inf"), float("nan"), -1])
def test_rrf_refuses_a_non_finite_or_negative_k(k):
    from rankstack.retrieve.fusion import rrf

    run = Run(np.array(["q"]), np.array(["d"]), np.array([1.0]))
    with pytest.raises(InputError, match="k must be a finite non-negative number"):
        rrf([run, run], k=k)


def test_fusion_refuses_non_finite_weights():
    from rankstack.retrieve.fusion import rrf

    run = Run(np.array(["q"]), np.array(["d"]), np.array([1.0]))
    with pytest.raises(InputError, match="weights must be finite numbers"):
        rrf([run, run], weights=[float("inf"), 1.0])
