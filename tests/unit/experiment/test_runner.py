"""Experiments: TOML parsing and errors, run caching keyed by expression, outputs, the CLI verb, report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rankstack.errors import InputError
from rankstack.recipes.experiment import load_experiment, run_experiment

TOPICS = ["brain", "cancer", "virus", "heart", "gene", "protein", "blood", "drug", "mouse", "trial"]


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tinycoll")
    rng = np.random.default_rng(3)
    qrels = []
    with open(root / "corpus.jsonl", "w") as fh:
        for i in range(200):
            words = rng.choice(TOPICS, 4).tolist() + [f"w{rng.integers(40)}" for _ in range(6)]
            fh.write(json.dumps({"_id": f"d{i}", "title": f"doc {i}", "text": " ".join(words)}) + "\n")
            qrels += [(f"q{TOPICS.index(t)}", f"d{i}") for t in set(words[:2]) if t in TOPICS]
    with open(root / "queries.jsonl", "w") as fh:
        for j, t in enumerate(TOPICS):
            fh.write(json.dumps({"_id": f"q{j}", "text": f"{t} w{j}"}) + "\n")
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" +
                                             "".join(f"{q}\t{d}\t1\n" for q, d in sorted(set(qrels))))
    return root


def write_toml(path: Path, collection: Path, extra: str = "", pipelines: str | None = None) -> Path:
    pipelines = pipelines or ('bm25 = "bm25"\nbm25b = "bm25(k1=1.5, b=0.9)"\n'
                              'hybrid = "fuse(bm25, bm25b, method=rrf) % 50"\n')
    path.write_text(f'title = "tiny"\ncollection = "{collection}"\nsplit = "test"\n'
                    f'measures = ["nDCG@10", "R@20"]\nbaseline = "bm25"\npermutations = 500\n{extra}'
                    f"\n[pipelines]\n{pipelines}")
    return path


def _same(a, b) -> None:
    da, db = a.to_dict(), b.to_dict()
    assert da.keys() == db.keys()
    for q in da:
        assert da[q] == pytest.approx(db[q])


def test_run_experiment_outputs_and_cache(collection, tmp_path):
    toml = write_toml(tmp_path / "exp.toml", collection)
    out = tmp_path / "out"
    cache = tmp_path / "cache"
    result = run_experiment(toml, out_dir=out, cache_dir=cache)
    assert list(result.runs) == ["bm25", "bm25b", "hybrid"]
    assert not any(result.cached.values())
    for name in ("bm25", "bm25b", "hybrid"):
        assert (out / "runs" / f"{name}.trec").is_file()
    table = (out / "measures.txt").read_text()
    assert "bm25 (baseline)" in table and "nDCG@10" in table and "hybrid" in table
    data = json.loads((out / "results.json").read_text())
    assert data["baseline"] == "bm25" and set(data["mean"]) == {"bm25", "bm25b", "hybrid"}
    assert data["comparison"]["stats"]["nDCG@10"]["hybrid"]["per_query_delta"]
    csv = (out / "per_query.csv").read_text().splitlines()
    assert csv[0] == "run,qid,measure,value,baseline_value,delta" and len(csv) == 1 + 3 * 2 * 10
    page = (out / "report.html").read_text()
    assert page.count("<svg") >= 3 and "<table id=measures>" in page and "http" not in page.split("<svg")[0]
    # the hybrid run is RRF of the other two (cut at 50)
    from rankstack.retrieve.fusion import rrf

    expect = rrf([result.runs["bm25"], result.runs["bm25b"]]).top_k(50)
    _same(result.runs["hybrid"], expect)

    # second run: everything from the cache, identical runs
    again = run_experiment(toml, out_dir=out, cache_dir=cache)
    assert all(again.cached.values())
    for name in result.runs:
        _same(again.runs[name], result.runs[name])
    # changing one expression recomputes it and whatever names it, nothing else
    write_toml(toml, collection, pipelines='bm25 = "bm25"\nbm25b = "bm25(k1=1.2, b=0.9)"\n'
                                           'hybrid = "fuse(bm25, bm25b, method=rrf) % 50"\n')
    third = run_experiment(toml, out_dir=None, cache_dir=cache)
    assert third.cached == {"bm25": True, "bm25b": False, "hybrid": False}


def test_experiment_file_errors(collection, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('collection = "x"\n[pipelines\n')
    with pytest.raises(InputError, match="invalid TOML"):
        load_experiment(bad)
    with pytest.raises(InputError, match="did you mean 'measures'"):
        load_experiment(write_toml(tmp_path / "a.toml", collection, extra='measure = ["AP"]\n'))
    (tmp_path / "c.toml").write_text(f'collection = "{collection}"\nbaseline = "nope"\n[pipelines]\nx = "bm25"\n')
    with pytest.raises(InputError, match="baseline 'nope'") as info:
        load_experiment(tmp_path / "c.toml")
    assert info.value.line == 2 and str(tmp_path / "c.toml") in str(info.value)
    (tmp_path / "d.toml").write_text(f'collection = "{collection}"\nmeasures = ["nDCG@x"]\n[pipelines]\nx = "bm25"\n')
    with pytest.raises(InputError):
        load_experiment(tmp_path / "d.toml")
    (tmp_path / "e.toml").write_text(f'collection = "{collection}"\n[pipelines]\n"my run" = "bm25"\n')
    with pytest.raises(InputError, match="identifier"):
        load_experiment(tmp_path / "e.toml")
    with pytest.raises(InputError, match="does not exist"):
        load_experiment(tmp_path / "missing.toml")


def test_single_pipeline_and_unknown_component(collection, tmp_path):
    toml = write_toml(tmp_path / "one.toml", collection, pipelines='bm25 = "bm25"\n')
    result = run_experiment(toml, out_dir=tmp_path / "o", cache_dir=None)
    assert result.comparison is None and (tmp_path / "o" / "report.html").is_file()
    toml = write_toml(tmp_path / "two.toml", collection, pipelines='bm25 = "bm25"\nx = "bm26"\n')
    with pytest.raises(InputError, match="did you mean 'bm25'") as info:
        run_experiment(toml, out_dir=None, cache_dir=None)
    # the error names the file, the pipeline's line, its name and its expression
    assert info.value.path == str(toml) and info.value.line == toml.read_text().splitlines().index('x = "bm26"') + 1
    assert "pipeline x = 'bm26'" in info.value.problem


def test_cli_verb(collection, tmp_path):
    toml = write_toml(tmp_path / "exp.toml", collection)
    out = tmp_path / "cli_out"
    proc = subprocess.run([sys.executable, "-m", "rankstack.cli", "experiment", str(toml), "--out", str(out),
                           "--cache-dir", str(tmp_path / "c")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "hybrid" in proc.stdout and (out / "report.html").is_file()
    proc = subprocess.run([sys.executable, "-m", "rankstack.cli", "experiment", str(tmp_path / "nope.toml")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_report_renders_in_headless_chromium(collection, tmp_path, chromium):
    """`chromium` (conftest) finds the browser; it skips when there is none, but fails under .ci/run."""
    toml = write_toml(tmp_path / "exp.toml", collection)
    out = tmp_path / "out"
    run_experiment(toml, out_dir=out, cache_dir=None)
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}"]
    url = (out / "report.html").resolve().as_uri()
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    assert '<table id="measures">' in dom
    assert dom.count("<tr>") >= 4  # header + three pipelines
    for fid in ("plot-deltas", "plot-recall", "plot-scores"):
        assert f'id="{fid}"' in dom
    assert dom.count("<svg") >= 3
    shot = tmp_path / "report.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1100,1600", url], capture_output=True,
                   timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000
