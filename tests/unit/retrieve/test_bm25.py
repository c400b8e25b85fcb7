"""BM25 over bm25s: ranking sanity, parameters, atomic save/load with a verified manifest."""

from __future__ import annotations

import json

import pytest

from rankstack.data.beir import Collection
from rankstack.errors import InputError
from rankstack.registry import Context, build
from rankstack.retrieve.bm25 import BM25Retriever
from rankstack.types import Queries, Run


def test_bm25_ranks_matching_documents_first(tiny_collection):
    coll = Collection(tiny_collection)
    run = BM25Retriever.from_collection(coll)(coll.queries("test"))
    top = {q: d[0] for q, d, _ in run.groups()}
    assert top == {"q1": "d6", "q2": "d2", "q3": "d3"}
    # documents that share no term with the query are not returned
    assert "d4" not in run.to_dict()["q2"]


def test_query_without_known_terms_returns_nothing(tiny_collection):
    r = BM25Retriever.from_collection(tiny_collection)
    run = r(Queries(("a", "b"), ("the of and", "zebra quantum")))
    assert len(run) == 0
    assert r.search(["vocalisation"], k=1)[0][0].tolist() == ["d6"]


def test_fields_and_params_change_scores(tiny_collection):
    q = Queries(("q",), ("felines",))
    both = BM25Retriever.from_collection(tiny_collection)(q).to_dict()["q"]
    title = BM25Retriever.from_collection(tiny_collection, fields=["title"])(q).to_dict()["q"]
    assert set(title) == {"d3"} and set(both) >= {"d1", "d3"}
    other = BM25Retriever.from_collection(tiny_collection, k1=1.5, b=0.75)(q).to_dict()["q"]
    assert other["d3"] != both["d3"]


@pytest.mark.parametrize("bad", [{"k1": -1}, {"b": 2}, {"method": "bm99"}, {"fields": ["body"]}, {"k": 0},
                                 {"stemmer": "klingon"}])
def test_bad_parameters(tiny_collection, bad):
    with pytest.raises(InputError):
        BM25Retriever.from_collection(tiny_collection, **bad)


def test_save_load_round_trip(tiny_collection, tmp_path):
    coll = Collection(tiny_collection)
    r = BM25Retriever.from_collection(coll, k1=1.2)
    r.save(tmp_path / "idx")
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["kind"] == "bm25-index" and manifest["num_docs"] == 6 and manifest["params"]["k1"] == 1.2
    loaded = BM25Retriever.load(tmp_path / "idx")
    queries = coll.queries("test")
    assert loaded(queries).to_dict() == r(queries).to_dict()


def test_tampered_index_is_refused(tiny_collection, tmp_path):
    BM25Retriever.from_collection(tiny_collection).save(tmp_path / "idx")
    with open(tmp_path / "idx" / "docids.json", "w") as fh:
        fh.write('["d1"]')
    with pytest.raises(InputError, match="checksum"):
        BM25Retriever.load(tmp_path / "idx")
    with pytest.raises(InputError, match="manifest.json is missing"):
        BM25Retriever.load(tmp_path)


def test_failed_save_keeps_existing_index(tiny_collection, tmp_path, monkeypatch):
    r = BM25Retriever.from_collection(tiny_collection)
    r.save(tmp_path / "idx")
    before = (tmp_path / "idx" / "manifest.json").read_text()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(r._model, "save", boom)
    with pytest.raises(RuntimeError):
        r.save(tmp_path / "idx", overwrite=True)
    assert (tmp_path / "idx" / "manifest.json").read_text() == before
    assert BM25Retriever.load(tmp_path / "idx").num_docs == 6
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".idx")]


def test_registry_builds_and_caches(tiny_collection, tmp_path):
    ctx = Context(collection=Collection(tiny_collection), cache_dir=tmp_path / "cache")
    a = build("bm25", context=ctx)
    assert any((tmp_path / "cache" / "bm25").iterdir())
    b = build({"name": "bm25", "args": {"k": 2}}, context=ctx)  # loaded from the cache
    q = Queries(("q",), ("cats purr",))
    assert len(b(q)) <= 2 and a(q).docids[0] == b(q).docids[0]


def test_as_reranker_keeps_input_documents(tiny_collection):
    coll = Collection(tiny_collection)
    r = BM25Retriever.from_collection(coll)
    q = Queries(("q1",), ("cats purr",))
    first = Run.from_dict({"q1": {"d1": 0.1, "d2": 0.2}}, queries=q)
    out = r(first)
    assert set(out.to_dict()["q1"]) <= {"d1", "d2"}


def _many_docs(n: int):
    from rankstack.data.beir import Document

    return [Document(f"d{i:05d}", "", f"common term{i % 7} text") for i in range(n)]


def test_cutoff_pushes_depth_down_past_the_default():
    """`bm25 % k` retrieves k per query even above bm25's own default depth of 1000."""
    r = BM25Retriever().index(_many_docs(1500))
    q = Queries(("q",), ("common",))
    assert len(r(q)) == 1000  # the default depth
    assert len((r % 1400)(q)) == 1400
    assert len((r % 200)(q)) == 200
    assert r.k == 1000  # pushing down never mutates the retriever
    assert len(((r % 1400) % 10)(q)) == 10
    assert len(((r % 10) % 1400)(q)) == 10  # an inner cut-off is the user's and wins


def test_cutoff_pushdown_through_a_pipeline_expression(tmp_path):
    from rankstack.pipeline.expression import parse_pipeline

    r = BM25Retriever().index(_many_docs(1500))
    r.save(tmp_path / "idx")
    stage = parse_pipeline(f"bm25(index='{tmp_path / 'idx'}') % 1300")
    assert len(stage(Queries(("q",), ("common",)))) == 1300


@pytest.mark.parametrize("args, message", [
    ({"token_pattern": ""}, "token_pattern must be a non-empty"),
    ({"token_pattern": "a*"}, "matches the empty string"),
    ({"token_pattern": "("}, "is not a regular expression"),
    ({"stemmer": 5}, "stemmer must be a Snowball algorithm name"),
    ({"stopwords": 5}, "stopwords must be 'lucene', 'en', None or a list"),
    ({"stopwords": ["a", 1]}, "stopwords must be 'lucene', 'en', None or a list"),
    ({"threads": "x"}, "threads must be an integer"),
    ({"threads": -1}, "threads must be an integer >= 0"),
    ({"k": 0}, "k must be an integer >= 1"),
    ({"k": True}, "k must be an integer"),
])
def test_bad_parameters_are_refused(args, message):
    with pytest.raises(InputError, match=message):
        BM25Retriever(**args)


def test_corpus_without_any_indexable_word_is_refused():
    from rankstack.data.beir import Document

    with pytest.raises(InputError, match="none of the 2 documents has an indexable word"):
        BM25Retriever().index([Document("a", "", ""), Document("b", "", "the of")])


def test_cache_is_keyed_by_corpus_content(tiny_collection, tmp_path):
    import os

    corpus = tiny_collection / "corpus.jsonl"
    ctx = Context(collection=Collection(tiny_collection), cache_dir=tmp_path / "cache")
    q = Queries(("q",), ("goldfish",))
    assert build("bm25", context=ctx)(q).docids.tolist() == ["d4"]
    st = corpus.stat()
    text = corpus.read_text()
    corpus.write_text(text.replace("Goldfish swim", "Sharkfin swim"))  # same size
    os.utime(corpus, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert corpus.stat().st_size == st.st_size and corpus.stat().st_mtime_ns == st.st_mtime_ns
    ctx = Context(collection=Collection(tiny_collection), cache_dir=tmp_path / "cache")
    assert len(build("bm25", context=ctx)(q)) == 0  # not the stale cached index
    assert len(list((tmp_path / "cache" / "bm25").iterdir())) == 2
