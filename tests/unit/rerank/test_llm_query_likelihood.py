"""UPR query likelihood with the fake LM: the score is the query tokens' mean log-probability
after the passage and the question instruction; ranking, costs, empty documents and queries, errors."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.errors import InputError
from rankstack.llm.fake import FakeLM
from rankstack.rerank.base import PairScorer
from rankstack.rerank.llm import QueryLikelihoodReranker
from rankstack.rerank.llm.prompts import QUESTION_INSTRUCTION
from rankstack.types import Queries, Run

DOCS = {"a": "cats purr", "b": "dogs bark loudly", "c": "", "d": "cats and dogs purr and bark"}


def make_run():
    q = Queries(("q1", "q2"), ("cats purr", "dogs bark"))
    return Run(["q1"] * 4 + ["q2"] * 4, list(DOCS) * 2, [4, 3, 2, 1] * 2, queries=q)


def test_score_is_the_mean_of_the_query_tokens_log_probabilities():
    seen = []

    def likelihood(text, tokens):
        seen.append((text, tokens))
        return [-1.0, -3.0] if "cats" in text.split("Text:")[1] else [-2.0, -4.0]

    stage = QueryLikelihoodReranker(FakeLM(likelihood=likelihood), DOCS)
    assert isinstance(stage, PairScorer)
    np.testing.assert_allclose(stage.score(["x  y", "x y"], ["cats", "dogs"]), [-2.0, -3.0])
    text, tokens = seen[0]
    assert QUESTION_INSTRUCTION in text and text.endswith("assistant: Question:") and tokens == ["x", "y"]


def test_ranks_passages_that_would_produce_the_query_first_with_costs_per_query():
    lm = FakeLM()  # default: a query word found in the prompt is ten times likelier
    out = QueryLikelihoodReranker(lm, DOCS, batch_size=3)(make_run())
    assert {str(d) for d in out.for_query("q1")[0][:2]} == {"a", "d"}
    assert {str(d) for d in out.for_query("q2")[0][:2]} == {"b", "d"}
    assert str(out.for_query("q1")[0][-1]) in ("b", "c")
    meta = out.metadata["llm"]
    assert meta["strategy"] == "query_likelihood" and meta["per_query"]["q1"]["calls"] == 2  # 4 pairs by 3
    assert meta["total"]["prompt_tokens"] == sum(v["prompt_tokens"] for v in meta["per_query"].values())


def test_passages_are_truncated_and_an_empty_one_is_the_placeholder():
    seen = []
    lm = FakeLM(likelihood=lambda text, tokens: seen.append(text) or [-1.0] * len(tokens))
    QueryLikelihoodReranker(lm, {"x": "", "y": "one two three four five six seven"}, max_passage_tokens=5)(
        Run(["q", "q"], ["x", "y"], [2.0, 1.0], queries=Queries(("q",), ("t",))))
    assert any("Text: (empty document)" in t for t in seen)
    assert any("Text: one two three four five\n" in t for t in seen) and not any("six" in t for t in seen)


def test_errors_are_one_line_and_name_the_query():
    with pytest.raises(InputError, match="depth must be a positive integer"):
        QueryLikelihoodReranker(FakeLM(), DOCS, depth=0)
    for bad in (0, -3, "200"):  # a negative cut would silently drop a passage's last tokens
        with pytest.raises(InputError, match="max_passage_tokens must be a positive integer or None"):
            QueryLikelihoodReranker(FakeLM(), DOCS, max_passage_tokens=bad)
    empty = Run(["q1"], ["a"], [1.0], queries=Queries(("q1",), ("   ",)))
    with pytest.raises(InputError, match="query 'q1': a query is empty"):
        QueryLikelihoodReranker(FakeLM(), DOCS)(empty)
    with pytest.raises(InputError, match=r"query 'q1': .*exceeds the context length 8"):
        QueryLikelihoodReranker(FakeLM(context_length=8), DOCS)(make_run())


def test_one_progress_bar_over_the_queries_not_one_per_query(capsys):
    QueryLikelihoodReranker(FakeLM(), DOCS, progress=True)(make_run())
    err = capsys.readouterr().err
    assert "2/2" in err and "query" in err and "pair" not in err
