"""Unit tests of rankstack.evaluate.compare: tests, correction, outputs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from scipy import stats

from rankstack.errors import InputError
from rankstack.evaluate import compare, evaluate, format_table
from rankstack.evaluate.compare import holm, paired_t_test, randomization_test
from rankstack.types import Qrels, Run

N_Q, N_D = 40, 20


@pytest.fixture(scope="module")
def qrels() -> Qrels:
    rng = np.random.default_rng(0)
    return Qrels.from_dict({f"q{i:02d}": {f"d{j:02d}": int(rng.integers(0, 3)) for j in range(N_D)}
                            for i in range(N_Q)})


def _run(name: str, seed: int, qrels: Qrels, boost: float = 0.0) -> Run:
    """Random scores; ``boost`` adds the relevance label so larger boosts rank better."""
    rng = np.random.default_rng(seed)
    labels = qrels.to_dict()
    return Run.from_dict({q: {d: float(rng.random()) + boost * labels[q][d] for d in docs}
                          for q, docs in labels.items()}, name=name)


@pytest.fixture(scope="module")
def runs(qrels) -> dict[str, Run]:
    return {"base": _run("base", 1, qrels), "noise": _run("noise", 2, qrels),
            "good": _run("good", 3, qrels, boost=1.0)}


def test_t_test_equals_scipy_and_stats(runs, qrels):
    cmp = compare(runs, qrels, ["nDCG@10", "AP"], permutations=500)
    base = evaluate(runs["base"], qrels, ["nDCG@10", "AP"])
    for name in ("noise", "good"):
        ev = evaluate(runs[name], qrels, ["nDCG@10", "AP"])
        for m in ("nDCG@10", "AP"):
            a = np.array([ev.per_query[m][q] for q in base.queries])
            b = np.array([base.per_query[m][q] for q in base.queries])
            s = cmp.stats[m][name]
            assert s.t_p == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-12)
            assert s.mean == pytest.approx(ev.mean[m])
            assert s.delta == pytest.approx(ev.mean[m] - base.mean[m])
            d = a - b
            assert (s.wins, s.ties, s.losses) == (int((d > 0).sum()), int((d == 0).sum()), int((d < 0).sum()))
            assert s.per_query_delta == pytest.approx(dict(zip(base.queries, d)))
    assert cmp.baseline == "base" and cmp.runs == ["base", "noise", "good"]
    assert cmp.stats["AP"]["good"].t_p_holm < 0.05 and cmp.stats["AP"]["good"].perm_p_holm < 0.05
    assert cmp.stats["AP"]["base"].delta == 0 and cmp.stats["AP"]["base"].t_p == 1.0


def test_holm_hand_computed():
    # sorted: 0.01*3=0.03, 0.02*2=0.04, 0.04*1=0.04 -> in input order
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    # monotonicity: 0.03*2=0.06 then max(0.06, 0.02*1)=0.06 ; capped at 1
    assert holm([0.03, 0.02 / 1, 0.9]) == pytest.approx([0.06, 0.06, 0.9])
    assert holm([0.6, 0.5]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []
    out = holm([float("nan"), 0.01])
    assert np.isnan(out[0]) and out[1] == pytest.approx(0.01)


def test_holm_applied_across_runs(qrels):
    runs = {"base": _run("base", 1, qrels)} | {f"r{i}": _run(f"r{i}", 10 + i, qrels, 0.2 * i) for i in range(1, 4)}
    cmp = compare(runs, qrels, "AP", permutations=200)
    others = ["r1", "r2", "r3"]
    raw_t = [cmp.stats["AP"][r].t_p for r in others]
    raw_p = [cmp.stats["AP"][r].perm_p for r in others]
    assert [cmp.stats["AP"][r].t_p_holm for r in others] == pytest.approx(holm(raw_t))
    assert [cmp.stats["AP"][r].perm_p_holm for r in others] == pytest.approx(holm(raw_p))


def test_permutation_identical_and_clearly_better(runs, qrels):
    same = {"a": runs["base"], "b": runs["base"].renamed("b")}
    cmp = compare(same, qrels, ["AP", "nDCG@10"], permutations=1000)
    for m in ("AP", "nDCG@10"):
        s = cmp.stats[m]["b"]
        assert s.perm_p == 1.0 and s.t_p == 1.0 and (s.wins, s.ties, s.losses) == (0, N_Q, 0)
    better = compare({"base": runs["base"], "good": runs["good"]}, qrels, "AP", permutations=2000)
    assert better.stats["AP"]["good"].perm_p <= 2 / 2001
    # direct: a shift of +0.1 on 40 queries is never matched by sign flips
    assert randomization_test(np.full(40, 0.1), 999, 0) == pytest.approx(1 / 1000)
    assert randomization_test(np.zeros(10), 10, 0) == 1.0
    assert paired_t_test(np.ones(5), np.ones(5)) == 1.0


def test_seeded_and_reproducible(runs, qrels):
    a = compare(runs, qrels, "AP", permutations=300, seed=5)
    b = compare(runs, qrels, "AP", permutations=300, seed=5)
    assert a.stats["AP"]["noise"].perm_p == b.stats["AP"]["noise"].perm_p


def test_outputs_text_json_csv(runs, qrels, tmp_path):
    cmp = compare(list(runs.values()), qrels, ["nDCG@10", "AP", "NumRet"], baseline="base", permutations=300)
    text = cmp.to_text()
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["run", "nDCG@10"] and "W/T/L" in lines[0]
    good = next(line for line in lines if line.startswith("good"))
    assert "\u2020" in good                       # significant by the corrected t-test
    s = cmp.stats["AP"]["good"]
    assert f"{s.mean:.4f}" in good and f"{s.wins}/{s.ties}/{s.losses}" in good
    assert "baseline" in next(line for line in lines if line.startswith("base"))
    assert len({len(line) for line in lines[:5] if line.strip()}) <= 2   # aligned columns
    assert "800" in good                          # counts print as integers

    d = json.loads(cmp.to_json())
    assert d == cmp.to_dict() | {"stats": d["stats"]}
    assert d["baseline"] == "base" and d["stats"]["AP"]["good"]["t_p"] == pytest.approx(s.t_p)
    assert set(d["stats"]["AP"]["good"]) >= {"mean", "delta", "t_p", "t_p_holm", "perm_p", "perm_p_holm",
                                              "wins", "ties", "losses", "per_query", "per_query_delta"}

    path = tmp_path / "out" / "cmp.csv"
    cmp.to_csv(path)
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 3 * 3 * N_Q
    assert list(rows[0]) == ["run", "qid", "measure", "value", "baseline_value", "delta"]
    row = next(r for r in rows if r["run"] == "good" and r["measure"] == "AP" and r["qid"] == "q07")
    assert float(row["value"]) == s.per_query["q07"]
    assert float(row["delta"]) == pytest.approx(float(row["value"]) - float(row["baseline_value"]))
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_baseline_queries_and_missing_runs(runs, qrels):
    """Other runs are scored on the baseline's queries; a query they lack counts 0."""
    partial = runs["good"].restrict([f"q{i:02d}" for i in range(N_Q) if i % 2 == 0]).renamed("partial")
    cmp = compare([runs["base"], partial], qrels, "AP", permutations=100)
    assert cmp.queries == evaluate(runs["base"], qrels, "AP").queries
    assert cmp.stats["AP"]["partial"].per_query["q01"] == 0.0
    cmp2 = compare([partial, runs["base"]], qrels, "AP", baseline=0, permutations=100)
    assert len(cmp2.queries) == N_Q // 2
    cmp3 = compare([partial, runs["base"]], qrels, "AP", baseline="partial", missing="zero", permutations=100)
    assert len(cmp3.queries) == N_Q


def test_errors(runs, qrels):
    with pytest.raises(InputError, match="two runs are named"):
        compare([runs["base"], runs["base"]], qrels, "AP")
    with pytest.raises(InputError, match="at least two"):
        compare([runs["base"]], qrels, "AP")
    with pytest.raises(InputError, match="not among"):
        compare(runs, qrels, "AP", baseline="nope")
    with pytest.raises(InputError, match="out of range"):
        compare(runs, qrels, "AP", baseline=7)
    with pytest.raises(InputError, match="did you mean"):
        compare(runs, qrels, "MAP")
    with pytest.raises(InputError, match="none of the"):
        compare({"a": runs["base"], "b": Run.from_dict({"zz": {"d": 1.0}})}, qrels, "AP")
    with pytest.raises(InputError):
        compare(runs, qrels, "AP", permutations=0)


def test_format_table(runs, qrels):
    evs = {n: evaluate(r, qrels, ["nDCG@10", "AP", "NumRel"]) for n, r in runs.items()}
    table = format_table(evs)
    lines = table.splitlines()
    assert lines[0].split() == ["run", "nDCG@10", "AP", "NumRel", "queries"]
    assert len(lines) == 2 + len(runs)
    assert f"{evs['good'].mean['AP']:.4f}" in lines[4]
    assert lines[4].split()[-1] == str(N_Q)
    with pytest.raises(InputError):
        format_table({})
