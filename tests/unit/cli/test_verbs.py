"""CLI: every verb has --help with an example; errors print one line and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rankstack.cli import build_parser, main


def verbs() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "verb")
    return sorted(sub.choices)


def test_core_verbs_present():
    assert {"retrieve", "evaluate", "index", "search"} <= set(verbs())


@pytest.mark.parametrize("verb", verbs())
def test_every_verb_has_help_with_example(verb, capsys):
    with pytest.raises(SystemExit) as info:
        main([verb, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "example:" in out and f"rankstack {verb}" in out


def test_retrieve_then_evaluate(tiny_collection, tmp_path, capsys):
    run_path = tmp_path / "bm25.run"
    assert main(["retrieve", "--collection", str(tiny_collection), "--out", str(run_path), "-k", "3",
                 "--cache-dir", "none"]) == 0
    lines = run_path.read_text().splitlines()
    assert lines[0].split()[:4] == ["q1", "Q0", "d6", "1"]
    assert main(["evaluate", "--collection", str(tiny_collection), str(run_path), "-m", "nDCG@10",
                 "-m", "P@1", "--json", str(tmp_path / "out.json")]) == 0
    result = json.loads((tmp_path / "out.json").read_text())
    assert set(result) == {"bm25"} and result["bm25"]["P@1"] == pytest.approx(1.0)


def test_evaluate_malformed_run_prints_one_line_and_exits_2(tiny_collection, tmp_path):
    bad = tmp_path / "bad.run"
    bad.write_text("q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2 oops t\n")
    proc = subprocess.run([sys.executable, "-m", "rankstack.cli", "evaluate", "--collection",
                           str(tiny_collection), str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "bad.run:2" in err[0] and "'oops'" in err[0]
    assert "Traceback" not in proc.stderr


def test_unknown_retriever_suggests(tiny_collection, tmp_path, capsys):
    code = main(["retrieve", "--collection", str(tiny_collection), "--retriever", "bm26",
                 "--out", str(tmp_path / "x.run")])
    assert code == 2
    assert "did you mean 'bm25'" in capsys.readouterr().err
    assert not (tmp_path / "x.run").exists()


def test_index_and_search(tiny_collection, tmp_path, capsys):
    assert main(["index", "--collection", str(tiny_collection), "--out", str(tmp_path / "idx")]) == 0
    assert main(["search", str(tmp_path / "idx"), "why do cats purr", "-k", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2].split()[-1] == "d6"
    assert main(["search", str(tmp_path / "idx"), "   "]) == 2


def test_import_is_light():
    code = ("import sys, rankstack, rankstack.cli, rankstack.data, rankstack.pipeline;"
            "rankstack.cli.build_parser();"
            "heavy=[m for m in ('torch','faiss','lightgbm','sentence_transformers','transformers',"
            "'onnxruntime') if m in sys.modules]; print(','.join(heavy))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""


def test_every_top_level_export_resolves():
    import rankstack

    for name in rankstack.__all__:
        assert getattr(rankstack, name) is not None
