"""LLM strategies in pipeline expressions and experiment files: registered names, per-query costs in
results.json and the report, a cached re-run that is free, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rankstack.data.beir import Collection
from rankstack.errors import InputError
from rankstack.pipeline.expression import parse_pipeline
from rankstack.recipes.experiment import run_experiment
from rankstack.registry import Context, names
from tests.fixtures.beir import write_beir

STRATEGIES = {
    "pointwise": "llm_pointwise(model='fake')",
    "query_likelihood": "llm_query_likelihood(model='fake')",
    "prp": "llm_prp(model='fake', variant='sorting', k=2)",
    "listwise": "llm_listwise(model='fake', window=3, stride=2)",
    "first": "llm_first(model='fake', window=3, stride=2)",
    "full": "llm_fullrank(model='fake', mode='first')",
    "icr": "llm_icr(model='fake')",
}


@pytest.fixture
def tiny(tmp_path) -> Path:
    return write_beir(tmp_path / "tiny")


def test_strategies_are_registered():
    assert {"llm_pointwise", "llm_query_likelihood", "llm_prp", "llm_listwise", "llm_first", "llm_fullrank", "llm_icr"} <= set(names())


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_runs_in_a_pipeline(tiny, name):
    coll = Collection(str(tiny))
    stage = parse_pipeline(f"bm25 % 5 >> {STRATEGIES[name]}", Context(collection=coll))
    run = stage(coll.queries("test"))
    assert sorted(run.query_ids) == ["q1", "q2", "q3"]
    meta = run.metadata["llm"]
    assert set(meta["per_query"]) == set(run.query_ids) and meta["total"]["calls"] > 0


def test_bad_arguments_are_one_line_errors(tiny):
    ctx = Context(collection=Collection(str(tiny)))
    with pytest.raises(InputError, match="llm_first: window must be an integer"):
        parse_pipeline("bm25 % 5 >> llm_first(model='fake', window='x')", ctx)
    with pytest.raises(InputError, match="window of 200 passages .*exceeds the context length 4096"):
        parse_pipeline("bm25 % 5 >> llm_listwise(model='fake', window=200, stride=10)", ctx)
    with pytest.raises(InputError, match="llm_prp: variant must be one of 'allpairs', 'sorting', 'sliding'"):
        parse_pipeline("bm25 % 5 >> llm_prp(model='fake', variant='bubbles')", ctx)
    for name, spec in STRATEGIES.items():  # every strategy takes precision=, and names itself when it is wrong
        strategy = spec.split("(")[0]
        parse_pipeline(f"bm25 % 5 >> {spec[:-1]}, precision='fp32')", ctx)
        with pytest.raises(InputError, match=f"{strategy}: precision must be one of 'auto', 'fp32', 'bf16', got 'fp16'"):
            parse_pipeline(f"bm25 % 5 >> {spec[:-1]}, precision='fp16')", ctx)


def test_experiment_reports_llm_costs_and_reruns_free(tiny, tmp_path):
    toml = tmp_path / "exp.toml"
    toml.write_text(f'collection = "{tiny}"\nsplit = "test"\nmeasures = ["nDCG@10"]\nbaseline = "bm25"\n'
                    'permutations = 100\n[pipelines]\nbm25 = "bm25 % 5"\n'
                    'first = "bm25 % 5 >> llm_first(model=\'fake\', window=3, stride=2)"\n')
    out, cache = tmp_path / "out", tmp_path / "cache"
    run_experiment(toml, out_dir=out, cache_dir=cache)
    data = json.loads((out / "results.json").read_text())
    cost = data["pipelines"]["first"]["llm"]
    assert "llm" not in data["pipelines"]["bm25"]
    calls = cost["total"]["calls"]
    assert cost["strategy"] == "first" and cost["queries"] == 3 and calls >= 1
    for key in ("prompt_tokens", "calls"):
        assert cost["total"][key] == sum(q[key] for q in cost["per_query"].values())
    assert cost["mean_per_query"]["calls"] == pytest.approx(calls / 3, abs=1e-6)
    assert "<table id=llm-cost>" in (out / "report.html").read_text()
    again = run_experiment(toml, out_dir=out, cache_dir=cache)  # cached run: its recorded costs come back
    assert again.cached["first"] and again.runs["first"].metadata["llm"]["total"]["calls"] == calls
    data2 = json.loads((out / "results.json").read_text())
    assert data2["pipelines"]["first"]["cached"] and data2["pipelines"]["first"]["llm"]["total"]["calls"] == calls


def test_cli_retrieve_with_an_llm_reranker(tiny, tmp_path):
    out = tmp_path / "llm.run"
    proc = subprocess.run([sys.executable, "-m", "rankstack", "retrieve", "--collection", str(tiny), "--split", "test",
                           "--retriever", "bm25 % 4 >> llm_listwise(model='fake', window=3, stride=1)",
                           "-k", "4", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [line.split() for line in out.read_text().splitlines()]
    assert {row[0] for row in lines} == {"q1", "q2", "q3"} and all(len(row) == 6 for row in lines)
