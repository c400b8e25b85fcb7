"""RM3 and Bo1 query expansion and weighted BM25: hand-computed weights, kept terms, pipelines, errors."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from rankstack.data.beir import Collection
from rankstack.errors import InputError
from rankstack.pipeline.expression import parse_pipeline
from rankstack.registry import Context, build
from rankstack.retrieve.bm25 import BM25Retriever
from rankstack.retrieve.prf import RM3, TermCounts, bo1_weights, rm3_weights
from rankstack.types import Queries, Run, WeightedQueries

# d1: cat cat dog | d2: cat fish | d3: bird   (N = 3)
COUNTS = TermCounts(["d1", "d2", "d3"], [["cat", "cat", "dog"], ["cat", "fish"], ["bird"]], analyzer={})


def test_term_counts_statistics():
    vocab = COUNTS.vocab.tolist()
    assert vocab == ["bird", "cat", "dog", "fish"]
    assert dict(zip(vocab, COUNTS.df.tolist())) == {"bird": 1, "cat": 2, "dog": 1, "fish": 1}
    assert dict(zip(vocab, COUNTS.cf.tolist())) == {"bird": 1, "cat": 3, "dog": 1, "fish": 1}
    terms, tf = COUNTS.tf("d1")
    assert dict(zip(COUNTS.vocab[terms].tolist(), tf.tolist())) == {"cat": 2, "dog": 1}
    with pytest.raises(InputError, match="not in the collection"):
        COUNTS.tf("d9")


def test_rm3_weights_match_hand_computation():
    # p(D) = [3, 1] / 4; P(t|d1) = {cat 2/3, dog 1/3}; P(t|d2) = {cat 1/2, fish 1/2}
    # RM1 = {cat .625, dog .25, fish .125} -> top 2 {cat .625, dog .25} / .875
    # w = .5 * q + .5 * RM1 with q = {cat: 1}  ->  cat 6/7, dog 1/7
    w = rm3_weights(["cat"], ["d1", "d2"], np.array([3.0, 1.0]), COUNTS, fb_terms=2, orig_weight=0.5,
                    max_df=1.0)
    assert w == pytest.approx({"cat": 6 / 7, "dog": 1 / 7}, abs=1e-12)
    assert sum(w.values()) == pytest.approx(1.0)


def test_rm3_per_document_pruning_breaks_ties_by_term():
    # with fb_terms=1, d2's tied terms (cat 1, fish 1) keep 'cat'; d1 keeps 'cat'
    w = rm3_weights(["dog"], ["d1", "d2"], np.array([1.0, 1.0]), COUNTS, fb_terms=1, orig_weight=0.5,
                    max_df=1.0)
    assert w == pytest.approx({"dog": 0.5, "cat": 0.5})


def test_rm3_keeps_original_terms_even_when_frequent_or_unknown():
    # max_df=0.5 drops 'cat' (df 2/3) from the feedback vectors, yet the query's 'cat' stays
    w = rm3_weights(["cat", "zebra"], ["d1", "d2"], np.array([3.0, 1.0]), COUNTS, fb_terms=10,
                    orig_weight=0.5, max_df=0.5)
    assert w == pytest.approx({"cat": 0.25, "zebra": 0.25, "dog": 0.375, "fish": 0.125})
    # only orig_weight=0 (asked for) drops them
    w0 = rm3_weights(["cat", "zebra"], ["d1", "d2"], np.array([3.0, 1.0]), COUNTS, orig_weight=0.0,
                     max_df=0.5)
    assert set(w0) == {"dog", "fish"}


def test_rm3_non_positive_scores_are_read_as_log_likelihoods():
    w = rm3_weights(["bird"], ["d1", "d2"], np.array([0.0, 0.0]), COUNTS, fb_terms=3, orig_weight=0.0,
                    max_df=1.0)
    # equal softmax weights: cat (2/3 + 1/2) / 2, dog 1/6, fish 1/4
    assert w == pytest.approx({"cat": 7 / 12, "dog": 1 / 6, "fish": 1 / 4})


def test_bo1_weights_match_hand_computation():
    # min_docs=2: only 'cat' is in both feedback documents: tf_x 3, P_n = 3/3 -> 3 log2 2 + log2 2 = 4
    assert bo1_weights(["cat"], ["d1", "d2"], COUNTS, fb_terms=10, min_docs=2) == pytest.approx({"cat": 2.0})
    # min_docs=1: dog and fish tie (1 log2 4 + log2 4/3); fb_terms=2 keeps cat and 'dog' (term order)
    w = bo1_weights(["fish"], ["d1", "d2"], COUNTS, fb_terms=2, min_docs=1)
    dog = (2 + math.log2(4 / 3)) / 4
    assert w == pytest.approx({"fish": 1.0, "cat": 1.0, "dog": dog})


@pytest.fixture
def ctx(tiny_collection):
    return Context(collection=Collection(tiny_collection))


def test_weighted_bm25_equals_bm25_on_query_term_counts(tiny_collection):
    bm25 = BM25Retriever.from_collection(tiny_collection)
    texts = ["why do cats purr cats", "loyal dogs bark", "wild lions and tigers"]
    plain = bm25.search(texts)
    weighted = bm25.search_weighted([tuple(Counter(t).items()) for t in bm25.tokenize(texts)])
    for (d1, s1), (d2, s2) in zip(plain, weighted):
        assert d1.tolist() == d2.tolist()
        np.testing.assert_allclose(s1, s2, rtol=1e-5)  # bm25s sums in float32, search_weighted in float64
    # a weight scales a term's contribution linearly
    one = bm25.search_weighted([(("purr", 1.0),)])[0]
    three = bm25.search_weighted([(("purr", 3.0),)])[0]
    np.testing.assert_allclose(three[1], 3 * one[1])


def test_pipeline_expression_retrieves_afresh_with_the_expanded_query(ctx):
    queries = ctx.collection.queries("test")
    first = parse_pipeline("bm25 % 1", ctx)(queries)
    pipeline = parse_pipeline("bm25 % 1 >> rm3(fb_docs=1, fb_terms=10, orig_weight=0.5, max_df=1.0) >> bm25", ctx)
    run = pipeline(queries)
    assert isinstance(run, Run) and type(run.queries) is Queries  # weights used up, texts unchanged
    assert run.queries.texts == queries.texts
    # not a rerank of the one feedback document: the new search returns others too
    assert len(run.for_query("q1")[0]) > len(first.for_query("q1")[0])
    assert {"d1", "d6"} <= set(run.for_query("q1")[0].tolist())
    # the expansion stage alone returns its input with the weighted queries attached
    expanded = parse_pipeline("bm25 % 1 >> rm3(fb_docs=1, max_df=1.0)", ctx)(queries)
    assert isinstance(expanded.queries, WeightedQueries)
    assert expanded.to_dict() == first.to_dict()
    assert {"cat", "purr"} <= set(expanded.queries.weights_of("q1"))
    assert len(parse_pipeline("bm25 >> bo1 >> bm25", ctx)(queries)) > 0


def test_expansion_is_deterministic(ctx):
    queries = ctx.collection.queries("test")
    a = parse_pipeline("bm25 >> rm3(fb_docs=3, max_df=1.0)", ctx)(queries).queries
    b = parse_pipeline("bm25 >> rm3(fb_docs=3, max_df=1.0)", ctx)(Queries(queries.qids[::-1],
                                                                            queries.texts[::-1])).queries
    for qid in queries.qids:
        assert list(a.weights_of(qid).items()) == list(b.weights_of(qid).items())


def test_rm3_class_from_documents(tiny_collection):
    coll = Collection(tiny_collection)
    bm25 = BM25Retriever.from_collection(coll)
    stage = RM3(bm25, counts=TermCounts.build(coll.corpus(), bm25), fb_docs=2, max_df=1.0)
    run = (bm25 % 2 >> stage >> bm25)(coll.queries("test"))
    assert run.for_query("q2")[0][0] == "d2"


@pytest.mark.parametrize("spec, message", [
    ("bm25 >> rm3(fb_docs=0) >> bm25", "fb_docs must be a positive integer"),
    ("bm25 >> rm3(fb_terms='x') >> bm25", "fb_terms must be an integer"),
    ("bm25 >> rm3(orig_weight=1.5) >> bm25", r"orig_weight must be a number in \[0, 1\]"),
    ("bm25 >> rm3(fb_doc=3) >> bm25", "did you mean 'fb_docs'"),
    ("bm25 >> bo1(min_docs=-1) >> bm25", "min_docs must be a positive integer"),
    ("bm25 >> rm3(stemmer='klingon') >> bm25", "rm3: unknown stemmer"),
])
def test_bad_arguments_get_one_clear_error(ctx, spec, message):
    with pytest.raises(InputError, match=message):
        parse_pipeline(spec, ctx)(ctx.collection.queries("test"))


def test_misuse_is_refused(ctx, tiny_collection):
    queries = ctx.collection.queries("test")
    with pytest.raises(InputError, match="expands queries from a first-stage run"):
        parse_pipeline("rm3", ctx)(queries)
    with pytest.raises(InputError, match="needs the collection"):
        build("rm3", context=Context())
    with pytest.raises(InputError, match="tokenised differently.*stemmer"):
        parse_pipeline("bm25 >> rm3 >> bm25(stemmer=None)", ctx)(queries)


def test_experiment_file_and_cli_accept_expansion_pipelines(tiny_collection, tmp_path, capsys):
    from rankstack.cli import main
    from rankstack.recipes.experiment import run_experiment

    toml = tmp_path / "exp.toml"
    toml.write_text(f'collection = "{tiny_collection}"\nmeasures = ["nDCG@10"]\npermutations = 100\n'
                    '[pipelines]\nbm25 = "bm25"\nrm3 = "bm25 % 2 >> rm3(fb_docs=2, max_df=1.0) >> bm25"\n'
                    'bo1 = "bm25 >> bo1(fb_docs=2) >> bm25"\n')
    result = run_experiment(toml, cache_dir=None)
    assert set(result.runs) == {"bm25", "rm3", "bo1"}
    assert len(result.runs["rm3"].for_query("q1")[0]) > 2  # a fresh search, not the 2 feedback documents
    out = tmp_path / "rm3.run"
    assert main(["retrieve", "--collection", str(tiny_collection), "--split", "test", "--retriever",
                 "bm25 % 2 >> rm3(fb_docs=2, fb_terms=5, max_df=1.0) >> bm25", "--out", str(out)]) == 0
    assert {line.split()[0] for line in out.read_text().splitlines()} == {"q1", "q2", "q3"}
    assert main(["retrieve", "--collection", str(tiny_collection), "--retriever", "bm25 >> rm3(fb_docs=-1)",
                 "--out", str(tmp_path / "x.run")]) == 2
    assert "rm3: fb_docs must be a positive integer" in capsys.readouterr().err
