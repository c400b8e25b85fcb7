"""recipes.index: 'rankstack index' never destroys data; 'retrieve -k' above 1000 is honoured."""

from __future__ import annotations

from pathlib import Path

import pytest

from rankstack.errors import InputError
from rankstack.recipes.index import IndexConfig, RetrieveConfig, run, run_retrieve


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_index_refuses_the_collection_inside_it_and_the_data_root(tiny_collection: Path, tmp_path: Path,
                                                                  monkeypatch):
    monkeypatch.setenv("RANKSTACK_DATA", str(tmp_path))
    before = _files(tiny_collection)
    for out in (tiny_collection, tiny_collection / "index", tmp_path):
        with pytest.raises(InputError):
            run(IndexConfig(collection=str(tiny_collection), out=out))
    with pytest.raises(InputError):  # by name under the data root
        run(IndexConfig(collection="tiny", out=tmp_path / "tiny" / "qrels"))
    assert _files(tiny_collection) == before


def test_index_refuses_a_foreign_folder_and_needs_overwrite(tiny_collection: Path, tmp_path: Path, capsys):
    from rankstack.cli import main

    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.txt").write_text("four years")
    assert main(["index", "--collection", str(tiny_collection), "--out", str(thesis)]) == 2
    assert "not a rankstack artefact" in capsys.readouterr().err
    assert (thesis / "thesis.txt").read_text() == "four years"

    out = tmp_path / "idx"
    assert main(["index", "--collection", str(tiny_collection), "--out", str(out)]) == 0
    assert "indexed 6 documents" in capsys.readouterr().out
    assert main(["index", "--collection", str(tiny_collection), "--out", str(out), "--k1", "1.2"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["index", "--collection", str(tiny_collection), "--out", str(out), "--k1", "1.2",
                 "--stemmer", "none", "--overwrite"]) == 0
    from rankstack.retrieve.bm25 import BM25Retriever

    params = BM25Retriever.load(out).params
    assert params["k1"] == 1.2 and params["stemmer"] is None


def test_index_spec_syntax(tiny_collection: Path, tmp_path: Path):
    cfg = IndexConfig(collection=str(tiny_collection), out=tmp_path / "i", retriever="bm25(k1=1.5, b=0.5)", b=0.6)
    assert cfg.bm25_args() == {"k1": 1.5, "b": 0.6}
    with pytest.raises(InputError, match="builds BM25 indexes"):
        IndexConfig(collection=str(tiny_collection), out=tmp_path / "i", retriever="dense")


def test_retrieve_k_above_1000_is_not_capped(deep_collection: Path, tmp_path: Path, capsys):
    from rankstack.cli import main

    out = tmp_path / "deep.run"
    assert main(["retrieve", "--collection", str(deep_collection), "-k", "1400", "--out", str(out),
                 "--cache-dir", "none"]) == 0
    counts = {}
    for line in out.read_text().splitlines():
        counts[line.split()[0]] = counts.get(line.split()[0], 0) + 1
    assert counts == {"q0": 1400, "q1": 1400, "q2": 1400}
    res = run_retrieve(RetrieveConfig(collection=str(deep_collection), out=tmp_path / "b.run", k=1200,
                                      retriever="bm25(k1=1.2)", cache_dir=None))
    assert res.rows == 3 * 1200
    with pytest.raises(InputError):
        RetrieveConfig(collection=str(deep_collection), out=tmp_path / "c.run", k=0)
    with pytest.raises(InputError):  # never over an input
        run_retrieve(RetrieveConfig(collection=str(deep_collection), out=deep_collection / "corpus.jsonl",
                                    cache_dir=None))


def test_evaluate_per_query_without_baseline_is_refused_not_ignored(tiny_collection, tmp_path, capsys):
    from rankstack.cli import main

    run = tmp_path / "bm25.run"
    assert main(["retrieve", "--collection", str(tiny_collection), "--cache-dir", "none", "--out", str(run)]) == 0
    capsys.readouterr()
    code = main(["evaluate", "--collection", str(tiny_collection), str(run), "--per-query", str(tmp_path / "pq.csv")])
    assert code == 2 and "--per-query needs --baseline" in capsys.readouterr().err
    code = main(["evaluate", "--collection", str(tiny_collection), str(run),
                 "--json", str(tiny_collection / "results.json")])
    assert code == 2 and "inside the input" in capsys.readouterr().err
    assert not (tiny_collection / "results.json").exists()
