"""Workbench pages over a tiny BEIR collection and a BM25 experiment folder: rendering, sorting,
escaping of untrusted texts, refused names (path traversal), 404/400 pages, significance marks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("jinja2")

from fastapi.testclient import TestClient  # noqa: E402

from rankstack.recipes.serve import ServeConfig  # noqa: E402
from rankstack.service.app import create_app  # noqa: E402
from tests.browser.workbench_data import SCRIPT_DOC, make_experiment  # noqa: E402

EXP = "tiny-exp"


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    return make_experiment(tmp_path_factory.mktemp("wb"), EXP)


@pytest.fixture(scope="module")
def client(folders) -> TestClient:
    collection, exp = folders
    app = create_app(ServeConfig(target="bm25(k1=0.9, b=0.4)", collection=str(collection), experiments=[exp],
                                 cache_dir=None, warmup=False))
    with TestClient(app) as c:
        yield c


def _html(resp, status: int = 200) -> str:
    assert resp.status_code == status, resp.text[:500]
    assert resp.headers["content-type"].startswith("text/html")
    assert "Traceback" not in resp.text
    return resp.text


def _per_query_order(page: str) -> list[str]:
    table = page[page.index('id="per-query"'):]
    return re.findall(r'<a class="qid" href="[^"]*">([^<]+)</a>', table)


def _deltas(folders, run: str, measure: str = "nDCG@10") -> dict[str, float]:
    data = json.loads((folders[1] / "results.json").read_text())
    return data["comparison"]["stats"][measure][run]["per_query_delta"]


# search ---------------------------------------------------------------------------------------------
def test_home_and_static_files(client):
    page = _html(client.get("/"))
    assert '<form class="search"' in page and "bm25(k1=0.9, b=0.4)" in page
    assert "Content-Security-Policy" in client.get("/").headers
    css, js = client.get("/static/workbench.css"), client.get("/static/workbench.js")
    assert css.status_code == 200 and "mark{" in css.text
    assert js.status_code == 200 and "sortTable" in js.text


def test_search_highlights_and_escapes_untrusted_text(client):
    page = _html(client.get("/search", params={"q": "cats purr", "k": 10}))
    assert page.count('<li class="hit">') >= 3
    assert "<mark>" in page and re.search(r"<mark>[Pp]urr", page)
    # d13's title and text hold markup: shown as text, never as tags
    assert SCRIPT_DOC in page
    assert "<script>alert" not in page and "&lt;script&gt;alert(" in page
    assert "<i>cats</i>" not in page and "&lt;i&gt;cats&lt;/i&gt;" in page
    assert "<b>loudly</b>" not in page


@pytest.mark.parametrize("params, status, needle", [
    ({"q": ""}, 400, "type a query"),
    ({"q": "cats", "k": "0"}, 400, "k must be from 1"),
    ({"q": "cats", "k": "1000000000"}, 400, "k must be from 1"),
    ({"q": "cats", "k": "ten"}, 400, "k must be an integer"),
    ({"q": "cats " * 400}, 422, "query is 2000 characters long"),
])
def test_search_bad_input_is_a_page_naming_the_field(client, params, status, needle):
    page = _html(client.get("/search", params=params), status)
    assert needle in page


def test_search_sheds_load_like_the_api(client, monkeypatch):
    from rankstack.service.errors import Overloaded

    async def busy(*args, **kwargs):
        raise Overloaded(3)

    monkeypatch.setattr(client.app.state.pool, "run", busy)
    resp = client.get("/search", params={"q": "cats"})
    assert "busy" in _html(resp, 503) and resp.headers["retry-after"] == "3"


# experiments ----------------------------------------------------------------------------------------
def test_experiment_list_escapes_the_title(client):
    page = _html(client.get("/experiments"))
    assert f'href="/experiments/{EXP}"' in page
    assert "Tiny &lt;b&gt;BM25&lt;/b&gt; experiment" in page and "<b>BM25</b>" not in page


def test_measures_table_has_every_run_and_mean(client, folders):
    page = _html(client.get(f"/experiments/{EXP}"))
    table = page[page.index('id="measures"'):page.index("</table>", page.index('id="measures"'))]
    data = json.loads((folders[1] / "results.json").read_text())
    for run, means in data["mean"].items():
        assert run in table
        assert f"{means['nDCG@10']:.4f}" in table
    assert "(baseline)" in table and "W/T/L nDCG@10" in table


def test_per_query_list_sorted_by_delta_on_the_server(client, folders):
    deltas = _deltas(folders, "bm25_tf")
    qkey = lambda q: int(q[1:])  # noqa: E731
    ascending = [q for q, _ in sorted(deltas.items(), key=lambda t: (t[1], qkey(t[0])))]
    assert len(set(deltas.values())) > 2  # the order really depends on the sort
    page = _html(client.get(f"/experiments/{EXP}", params={"run": "bm25_tf"}))
    assert _per_query_order(page) == ascending
    page = _html(client.get(f"/experiments/{EXP}", params={"run": "bm25_tf", "sort": "-delta"}))
    order = _per_query_order(page)
    assert [deltas[q] for q in order] == sorted(deltas.values(), reverse=True)
    assert order != ascending
    page = _html(client.get(f"/experiments/{EXP}", params={"run": "bm25_tf", "sort": "qid"}))
    assert _per_query_order(page) == sorted(deltas, key=qkey)
    # rows carry the values the client-side sort reads
    assert re.search(r'data-delta="0\.5"', page)


def test_other_measure_and_run_are_selectable(client, folders):
    deltas = _deltas(folders, "fused", "RR@10")
    page = _html(client.get(f"/experiments/{EXP}", params={"run": "fused", "measure": "RR@10", "sort": "-delta"}))
    assert "Per query: fused vs bm25 on RR@10" in page
    assert [deltas[q] for q in _per_query_order(page)] == sorted(deltas.values(), reverse=True)


@pytest.mark.parametrize("params, status", [({"run": "nope"}, 404), ({"measure": "MAP@3"}, 404),
                                            ({"sort": "score;drop"}, 400)])
def test_experiment_page_bad_parameters(client, params, status):
    _html(client.get(f"/experiments/{EXP}", params=params), status)


def test_query_comparison_shows_both_runs_judgements_and_rank_changes(client):
    page = _html(client.get(f"/experiments/{EXP}/query/q7", params={"a": "bm25", "b": "bm25_tf"}))
    assert 'id="run-a"' in page and 'id="run-b"' in page
    a = page[page.index('id="run-a"'):page.index('id="run-b"')]
    b = page[page.index('id="run-b"'):]
    # d16 is the relevant one (grade 2): bm25_tf ranks it first, bm25 lower -> an upward change in B
    assert re.search(r'<li class="doc relevant[^"]*" data-docid="d16">', b)
    first_b = re.search(r'data-docid="([^"]+)"', b).group(1)
    assert first_b == "d16"
    d16_b = b[b.index('data-docid="d16"'):]
    assert re.search(r'class="change up"[^>]*>\u25b2\d+<', d16_b[:600])
    d16_a = a[a.index('data-docid="d16"'):]
    assert re.search(r'class="change up"[^>]*>\u21921<', d16_a[:600])   # A's column: its rank in B
    assert "rel 2" in page and "non-rel" in page            # d10 is judged 0
    assert "parrots speech" in page                          # the query text
    assert '<details><summary class="title">' in page        # expandable document texts
    assert 'id="query-measures"' in page and "+0.5000" in page


def test_query_page_escapes_document_text(client):
    page = _html(client.get(f"/experiments/{EXP}/query/q1", params={"a": "bm25", "b": "fused", "k": 20}))
    assert f'data-docid="{SCRIPT_DOC}"' in page
    assert "<script>alert" not in page and "&lt;script&gt;alert(" in page


@pytest.mark.parametrize("path", [
    "/experiments/%2e%2e", "/experiments/..%2F..%2Fetc%2Fpasswd", "/experiments/tmp",
    f"/experiments/{EXP}%2F..", f"/experiments/{EXP}/query/..%2F..%2Fmanifest.json",
    f"/experiments/{EXP}/query/q99", f"/experiments/{EXP}/query/q1?a=..%2F..%2Fmanifest",
    f"/experiments/{EXP}/query/q1?b=runs%2Fbm25",
])
def test_unknown_or_traversing_names_are_404_pages(client, path):
    page = _html(client.get(path), 404)
    assert "Not found" in page


def test_query_page_bad_k(client):
    assert "k must be from 1" in _html(client.get(f"/experiments/{EXP}/query/q1", params={"k": "0"}), 400)


# folders written by hand: significance marks, a tampered folder ------------------------------------------
def _write_experiment(folder: Path, t_p: float, perm_p: float) -> Path:
    from rankstack.storage import atomic_directory, write_manifest

    stats = {"bm25": {"mean": 0.5, "delta": 0.0, "t_p_holm": 1.0, "perm_p_holm": 1.0, "wins": 0, "ties": 2,
                      "losses": 0, "per_query": {"1": 0.5, "2": 0.5}, "per_query_delta": {"1": 0.0, "2": 0.0}},
             "ce": {"mean": 0.75, "delta": 0.25, "t_p_holm": t_p, "perm_p_holm": perm_p, "wins": 2, "ties": 0,
                    "losses": 0, "per_query": {"1": 0.7, "2": 0.8}, "per_query_delta": {"1": 0.2, "2": 0.3}}}
    results = {"title": "marks", "collection": "gone", "collection_path": str(folder / "no-such-collection"),
               "split": "test", "measures": ["nDCG@10"], "baseline": "bm25",
               "pipelines": {"bm25": {"expression": "bm25"}, "ce": {"expression": "bm25 >> reranker"}},
               "mean": {"bm25": {"nDCG@10": 0.5}, "ce": {"nDCG@10": 0.75}},
               "comparison": {"baseline": "bm25", "runs": ["bm25", "ce"], "measures": ["nDCG@10"],
                              "queries": ["1", "2"], "alpha": 0.05, "permutations": 100,
                              "stats": {"nDCG@10": stats}}}
    with atomic_directory(folder, overwrite=True) as tmp:
        (tmp / "results.json").write_text(json.dumps(results))
        (tmp / "per_query.csv").write_text("run,qid,measure,value,baseline_value,delta\n"
                                           "bm25,1,nDCG@10,0.5,0.5,0.0\nbm25,2,nDCG@10,0.5,0.5,0.0\n"
                                           "ce,1,nDCG@10,0.7,0.5,0.2\nce,2,nDCG@10,0.8,0.5,0.3\n")
        write_manifest(tmp, "experiment", 1, {"title": "marks"})
    return folder


def _client_for(folders: list[Path], collection: Path) -> TestClient:
    app = create_app(ServeConfig(target="bm25", collection=str(collection), experiments=folders, cache_dir=None,
                                 warmup=False))
    return TestClient(app)


@pytest.mark.parametrize("t_p, perm_p, marks", [(0.01, 0.02, "&dagger;&Dagger;"), (0.01, 0.2, "&dagger;"),
                                                (0.3, 0.2, "")])
def test_significance_marks(tmp_path, folders, t_p, perm_p, marks):
    exp = _write_experiment(tmp_path / "marks", t_p, perm_p)
    page = _html(_client_for([exp], folders[0]).get("/experiments/marks"))
    assert f'0.7500<span class="sig">{marks}</span>' in page
    assert "p: t-test" in page
    # the collection is gone: the list still renders (without query texts); the query page says why
    assert "/experiments/marks/query/1" in page
    page = _html(_client_for([exp], folders[0]).get("/experiments/marks/query/1"), 500)
    assert "collection of experiment" in page


def test_tampered_folder_is_reported_not_served(tmp_path, folders):
    exp = _write_experiment(tmp_path / "marks", 0.01, 0.01)
    (exp / "per_query.csv").write_text("run,qid,measure,value\n")
    client = _client_for([exp], folders[0])
    listing = _html(client.get("/experiments"))
    assert "cannot be read" in listing and "checksum" in listing
    assert "checksum" in _html(client.get("/experiments/marks"), 500)


def test_same_folder_names_get_distinct_urls(tmp_path, folders):
    one = _write_experiment(tmp_path / "a" / "exp", 0.01, 0.01)
    two = _write_experiment(tmp_path / "b" / "exp", 0.5, 0.5)
    client = _client_for([one, two], folders[0])
    assert "&dagger;&Dagger;</span>" in _html(client.get("/experiments/exp"))
    assert '0.7500<span class="sig"></span>' in _html(client.get("/experiments/exp-2"))


def test_change_labels():
    from rankstack.service.workbench.compare_view import Row, change_label

    def row(rank, other):
        return Row(rank, "d", 1.0, None, other, None if other is None else other - rank, "", "", False)

    assert change_label(row(2, 5), "b") == ("\u25b23", "up")
    assert change_label(row(5, 2), "b") == ("\u25bc3", "down")
    assert change_label(row(3, 3), "b") == ("=", "same")
    assert change_label(row(3, None), "b") == ("new", "new")
    assert change_label(row(2, 5), "a") == ("\u21925", "down")
    assert change_label(row(5, 2), "a") == ("\u21922", "up")
    assert change_label(row(3, None), "a") == ("gone", "gone")


def test_safe_snippet_lets_only_mark_through():
    from rankstack.service.workbench.render import safe_snippet

    assert str(safe_snippet("a <mark>cat</mark> &lt;b&gt;")) == "a <mark>cat</mark> &lt;b&gt;"
    assert str(safe_snippet("<script>x</script> <mark>y")) == "&lt;script&gt;x&lt;/script&gt; <mark>y</mark>"
    assert str(safe_snippet('<mark onclick="x">z</mark>')) == '&lt;mark onclick="x"&gt;z</mark>'


def test_single_pipeline_experiment_and_a_rewritten_folder(tmp_path, folders):
    from rankstack.recipes.experiment import run_experiment

    toml = tmp_path / "one.toml"
    out = tmp_path / "one"

    def write(expr: str) -> None:
        toml.write_text(f'title = "one"\ncollection = "{folders[0]}"\nmeasures = ["nDCG@10"]\n\n'
                        f'[pipelines]\nonly = "{expr}"\n')
        run_experiment(toml, out_dir=out, cache_dir=None, report=False)

    write("bm25")
    client = _client_for([out], folders[0])
    page = _html(client.get("/experiments/one"))
    assert "This is the baseline" in page and len(_per_query_order(page)) == 7
    assert "rel 2" in _html(client.get("/experiments/one/query/q1"))
    write("bm25 % 1")  # the folder is replaced by a new experiment: the next request shows the new one
    page = _html(client.get("/experiments/one"))
    assert "bm25 % 1" in page
