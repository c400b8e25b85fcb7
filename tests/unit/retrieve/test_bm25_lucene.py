"""The Lucene analyzer and one-byte norms of bm25: tokens as Anserini makes them, norms as Lucene decodes
them, BM25 scores by the formula, and indexes that remember (and refuse to mix) their analyzer."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rankstack.data.beir import Collection, Document
from rankstack.errors import InputError
from rankstack.registry import Context, build
from rankstack.retrieve.bm25 import KIND, BM25Retriever
from rankstack.retrieve.bm25_analyzer import LUCENE_STOPWORDS, LucenePorterStemmer, make_lucene_analyzer
from rankstack.retrieve.bm25_norms import lucene_length
from rankstack.storage import write_manifest
from rankstack.types import Queries, WeightedQueries

LUCENE = {"tokenizer": "lucene", "stopwords": "lucene", "stemmer": "lucene-porter"}
REGEX = {"tokenizer": "regex", "stopwords": "en", "stemmer": "english", "norms": "exact"}

# Output of Anserini 1.7.1's DefaultEnglishAnalyzer (newDefaultInstance / newNonStemmingInstance) on
# these lines, recorded by running its fat jar (benchmarks/bm25.md says how).
ANSERINI = [
    ("The p53 gene, 1.5 mg/kg; U.S.A. e.g. don't John's foo_bar a-b 10,000 3.5mg x:y IL-6",
     "p53 gene 1.5 mg kg u.s.a e.g don't john foo_bar b 10,000 3.5mg x:y il 6",
     "p53 gene 1.5 mg kg u.s.a e.g don't john foo_bar b 10,000 3.5mg x:y il 6"),
    ("TNF-α ©2020 日本語 “quoted” end. ² ___ _x 😀 ok",
     "tnf α © 2020 日 本 語 quoted end _x 😀 ok", "tnf α © 2020 日 本 語 quot end _x 😀 ok"),
    ("is us as caresses ponies generalization analogies possibly probabilities logically",
     "us caresses ponies generalization analogies possibly probabilities logically",
     "us caress poni gener analog possibl probabl logic"),
    ("Ünïcödé ΣΟΦΙΑ İstanbul naïve café's it's O'Neil’s",
     "ünïcödé σοφια istanbul naïve café o'neil", "ünïcödé σοφια istanbul naïv café o'neil"),
]


@pytest.mark.parametrize("text, unstemmed, stemmed", ANSERINI)
def test_tokens_equal_anserini(text, unstemmed, stemmed):
    assert make_lucene_analyzer(LUCENE_STOPWORDS, None)(text) == unstemmed.split()
    assert make_lucene_analyzer(LUCENE_STOPWORDS, LucenePorterStemmer().stem)(text) == stemmed.split()


def test_lucene_porter_departs_from_snowball_porter_where_lucene_does():
    import Stemmer

    snowball, lucene = Stemmer.Stemmer("porter"), LucenePorterStemmer()
    for word, expected in [("us", "us"), ("is", "is"), ("analogies", "analog"), ("possibly", "possibl"),
                           ("probabilities", "probabl"), ("caresses", "caress"), ("relational", "relat")]:
        assert lucene.stem(word) == expected
    assert [snowball.stemWord(w) for w in ("us", "analogies", "possibly")] == ["u", "analogi", "possibli"]
    assert len(LUCENE_STOPWORDS) == 33 and {"the", "such", "will", "with"} <= LUCENE_STOPWORDS


def test_one_byte_lengths_equal_lucene_smallfloat():
    # SmallFloat.byte4ToInt(SmallFloat.intToByte4(n)), from Lucene
    assert lucene_length(range(24)).tolist() == list(range(24))
    got = lucene_length([24, 39, 40, 41, 43, 56, 59, 60, 95, 96, 4632, 100000, 2**31 - 1]).tolist()
    assert got == [24, 39, 40, 40, 42, 56, 56, 60, 88, 96, 4632, 98328, 2013265944]


def _docs():
    long_text = " ".join(f"w{i}" for i in range(46)) + " cat"  # 47 terms: stored as 46 in one byte
    return [Document("a", "", "cat dog"), Document("b", "", long_text), Document("c", "", "dog dog fish"),
            Document("d", "", "the of and")]  # nothing but stopwords: no terms at all


def test_lucene_norm_scores_follow_lucene_bm25():
    k1, b = 0.9, 0.4
    r = BM25Retriever(k1=k1, b=b, **LUCENE, norms="lucene").index(_docs())
    n, avgdl = 3, (2 + 47 + 3) / 3  # Lucene's field statistics skip the document without terms

    def bm25(tf, df, length):
        return math.log(1 + (n - df + 0.5) / (df + 0.5)) * tf / (tf + k1 * (1 - b + b * length / avgdl))

    got = r.score_all(["cat"])
    assert got == pytest.approx([bm25(1, 2, 2), bm25(1, 2, 46), 0, 0], rel=1e-6)
    exact = BM25Retriever(k1=k1, b=b, **LUCENE, norms="exact").index(_docs()).score_all(["cat"])
    assert exact[1] != pytest.approx(got[1], rel=1e-4)  # bm25s: exact length, every document counted
    assert r.score_all(["dog"])[2] == pytest.approx(bm25(2, 2, 3), rel=1e-6)


def test_streamed_index_equals_in_memory_index_with_lucene_analyzer():
    docs = _docs() + [Document(f"x{i}", "t", f"cat {i} dog's U.S.A. x{i % 3}") for i in range(9)]
    q = Queries(("q1", "q2"), ("cats and dogs", "usa x1 cat"))
    whole = BM25Retriever(**LUCENE, norms="lucene").index(docs)
    chunked = BM25Retriever(**LUCENE, norms="lucene").index_chunks([docs[:5], docs[5:]], progress=False)
    assert whole(q).to_dict() == chunked(q).to_dict()
    assert whole.tokenize(["U.S.A. x1"]) == [["u.s.a", "x1"]]


def test_default_is_the_lucene_analyzer_with_one_byte_norms():
    r = BM25Retriever()
    assert {k: r.params[k] for k in ("tokenizer", "stopwords", "stemmer", "norms")} == {**LUCENE, "norms": "lucene"}
    assert r.tokenize(["A p53 analogy"]) == [["p53", "analog"]]


def test_save_load_keeps_the_analyzer(tmp_path):
    r = BM25Retriever(**LUCENE, norms="lucene").index(_docs())
    r.save(tmp_path / "idx")
    params = json.loads((tmp_path / "idx" / "manifest.json").read_text())["params"]
    assert params["tokenizer"] == "lucene" and params["norms"] == "lucene"
    loaded = BM25Retriever.load(tmp_path / "idx")
    q = Queries(("q",), ("cats dogs",))
    assert loaded(q).to_dict() == r(q).to_dict() and loaded.analyzer == r.analyzer


def test_index_saved_before_the_option_loads_as_regex(tmp_path):
    old = BM25Retriever(**REGEX).index(_docs())
    old.save(tmp_path / "idx")
    params = {k: v for k, v in old.params.items() if k not in ("tokenizer", "norms")}
    (tmp_path / "idx" / "manifest.json").unlink()
    write_manifest(tmp_path / "idx", KIND, 1, params, libraries=["bm25s"], extra={"num_docs": 4})
    loaded = BM25Retriever.load(tmp_path / "idx")
    assert loaded.params["tokenizer"] == "regex" and loaded.params["norms"] == "exact"
    q = Queries(("q",), ("cats dogs fish",))
    assert loaded(q).to_dict() == old(q).to_dict()


def test_mixing_analyzers_fails_loudly(tmp_path, tiny_collection):
    regex = BM25Retriever(**REGEX).index(_docs())
    lucene = BM25Retriever().index(_docs())
    expanded = WeightedQueries(("q",), ("cat",), term_weights=((("cat", 1.0),),), analyzer=regex.analyzer)
    with pytest.raises(InputError, match="tokenizer='regex' vs 'lucene'"):
        lucene(expanded)
    assert len(regex(expanded)) == 2
    lucene.save(tmp_path / "idx")
    with pytest.raises(InputError, match="built with tokenizer='lucene'"):
        build({"name": "bm25", "args": {"index": str(tmp_path / "idx"), "tokenizer": "regex"}})
    ctx = Context(collection=Collection(tiny_collection))
    assert build({"name": "bm25", "args": {"tokenizer": "regex", "norms": "exact"}}, context=ctx).params[
        "tokenizer"] == "regex"


@pytest.mark.parametrize("args, message", [
    ({"tokenizer": "whitespace"}, "tokenizer must be one of regex, lucene"),
    ({"norms": "none"}, "norms must be one of exact, lucene"),
    ({"method": "atire", "norms": "lucene"}, "norms='lucene' is Lucene's BM25"),
    ({"token_pattern": r"\w+"}, "token_pattern applies to tokenizer='regex' only"),
    ({"stopwords": "fr"}, "with tokenizer='lucene', stopwords must be"),
])
def test_bad_lucene_options_are_refused(args, message):
    with pytest.raises(InputError, match=message):
        BM25Retriever(**args)


def test_regex_tokenizer_accepts_lucene_stopwords_and_stemmer():
    r = BM25Retriever(tokenizer="regex", stopwords="lucene", stemmer="lucene-porter", norms="exact")
    assert r.tokenize(["Such analogies are possibly in it"]) == [["analog", "possibl"]]
    assert np.array_equal(r.index(_docs()).score_all(["cat"]) > 0, [True, True, False, False])


def test_other_bm25_variants_default_to_exact_norms():
    """One-byte norms belong to Lucene's formula: bm25+/atire take exact lengths unless told otherwise."""
    assert BM25Retriever(method="bm25+").params["norms"] == "exact"
    assert BM25Retriever().params["norms"] == "lucene"
