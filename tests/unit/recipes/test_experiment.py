"""recipes.experiment (issue 11): typed TOML keys, pipeline errors name file and pipeline, content-keyed
run cache (an edit with its mtime restored is never served stale), safe --out, depth above 1000."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rankstack.errors import InputError
from rankstack.recipes.experiment import ExperimentConfig, load_experiment, run, run_experiment


def _toml(path: Path, collection: Path, extra: str = "", pipelines: str = 'bm25 = "bm25"\n') -> Path:
    path.write_text(f'collection = "{collection}"\nmeasures = ["nDCG@10"]\npermutations = 100\n{extra}'
                    f"\n[pipelines]\n{pipelines}")
    return path


@pytest.mark.parametrize("extra, key, message", [
    ("data_root = 5\n", "data_root", "setting 'data_root' must be a string (or none), got 5"),
    ("depth = 'deep'\n", "depth", "setting 'depth' must be an integer"),
    ("depth = true\n", "depth", "setting 'depth' must be an integer"),
    ("seed = 1.5\n", "seed", "setting 'seed' must be an integer"),
    ("recall_depths = 10\n", "recall_depths", "must be a list of an integer"),
    ("depth = 0\n", "depth", "depth must be a positive integer"),
    ("alpha = 2\n", "alpha", "alpha must be in (0, 1)"),
])
def test_wrongly_typed_key_is_one_clear_error(tiny_collection: Path, tmp_path: Path, extra, key, message):
    toml = _toml(tmp_path / "exp.toml", tiny_collection, extra)
    with pytest.raises(InputError) as err:
        load_experiment(toml)
    assert message in err.value.problem and err.value.path == str(toml)
    assert err.value.line == toml.read_text().splitlines().index(extra.strip()) + 1


def test_cli_data_root_5_is_one_line(tiny_collection: Path, tmp_path: Path, capsys):
    from rankstack.cli import main

    toml = _toml(tmp_path / "exp.toml", tiny_collection, "data_root = 5\n")
    assert main(["experiment", str(toml), "--out", str(tmp_path / "o"), "--cache-dir", "none"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{toml}:4: setting 'data_root'" in err and "Traceback" not in err


def test_pipeline_error_names_file_pipeline_and_expression(tiny_collection: Path, tmp_path: Path):
    toml = _toml(tmp_path / "exp.toml", tiny_collection, pipelines='bm25 = "bm25"\nbad = "bm25(kl=1.2) % 10"\n')
    with pytest.raises(InputError) as err:
        run_experiment(toml, cache_dir=None)
    text = str(err.value)
    line = toml.read_text().splitlines().index('bad = "bm25(kl=1.2) % 10"') + 1
    assert text.startswith(f"{toml}:{line}: pipeline bad = 'bm25(kl=1.2) % 10': ") and "'k1'" in text


def test_cache_is_keyed_by_content_not_mtime(tiny_collection: Path, tmp_path: Path):
    toml = _toml(tmp_path / "exp.toml", tiny_collection)
    cache = tmp_path / "cache"
    first = run_experiment(toml, cache_dir=cache)
    assert first.cached == {"bm25": False}
    assert run_experiment(toml, cache_dir=cache).cached == {"bm25": True}
    corpus = tiny_collection / "corpus.jsonl"
    st = corpus.stat()
    lines = corpus.read_text().splitlines()
    doc = json.loads(lines[0])
    doc["text"] = ("parrots " * 50)[:len(doc["text"])]  # same size and mtime: only the content differs
    corpus.write_text("\n".join([json.dumps(doc)] + lines[1:]) + "\n")
    os.utime(corpus, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert corpus.stat().st_size == st.st_size and corpus.stat().st_mtime_ns == st.st_mtime_ns
    again = run_experiment(toml, cache_dir=cache)
    assert again.cached == {"bm25": False}
    assert again.runs["bm25"].to_dict() != first.runs["bm25"].to_dict()


def test_out_refuses_foreign_folders_and_inputs_and_replaces_an_experiment(tiny_collection: Path, tmp_path: Path):
    toml = _toml(tmp_path / "exp.toml", tiny_collection, pipelines='bm25 = "bm25"\nb2 = "bm25(b=0.9)"\n')
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.txt").write_text("four years")
    for out in (thesis, tiny_collection, tiny_collection / "out"):
        with pytest.raises(InputError):
            run(ExperimentConfig(file=toml, out=out, cache_dir=None, report=False))
    assert (thesis / "thesis.txt").read_text() == "four years"
    assert not (tiny_collection / "out").exists()
    out = tmp_path / "out"
    first = run(ExperimentConfig(file=toml, out=out, cache_dir=None, report=False))
    assert "b2" in first.to_text() and (out / "manifest.json").is_file()
    run(ExperimentConfig(file=toml, out=out, cache_dir=None, report=False))  # an experiment is replaced
    assert json.loads((out / "results.json").read_text())["pipelines"]["b2"]["expression"] == "bm25(b=0.9)"


def test_depth_above_1000_is_not_capped(deep_collection: Path, tmp_path: Path):
    toml = _toml(tmp_path / "deep.toml", deep_collection, "depth = 1300\n",
                 pipelines='bm25 = "bm25"\nfused = "fuse(bm25, bm25(k1=1.5), method=rrf)"\n')
    result = run_experiment(toml, cache_dir=tmp_path / "cache")
    for name in ("bm25", "fused"):
        counts = {q: len(d) for q, d, _ in result.runs[name].groups()}
        assert counts == {"q0": 1300, "q1": 1300, "q2": 1300}, name
