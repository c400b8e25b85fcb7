"""Pointwise yes/no log-odds with the fake LM: a PairScorer, per-query costs, empty documents."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.errors import InputError
from rankstack.llm.fake import FakeLM
from rankstack.rerank.base import PairScorer
from rankstack.rerank.llm import PointwiseLLMReranker
from rankstack.rerank.llm.oracle import oracle_lm
from rankstack.types import Queries, Run

DOCS = {"a": "cats purr", "b": "dogs bark loudly", "c": "", "d": "cats and dogs purr and bark"}


def make_run():
    q = Queries(("q1", "q2"), ("cats purr", "dogs bark"))
    return Run(["q1"] * 4 + ["q2"] * 4, list(DOCS) * 2, [4, 3, 2, 1] * 2, queries=q)


def test_score_is_yes_minus_no():
    lm = FakeLM(logprobs=lambda text, cands: [2.0, -1.0] if "cats" in text else [-1.0, 1.0])
    stage = PointwiseLLMReranker(lm, DOCS)
    assert isinstance(stage, PairScorer)
    np.testing.assert_allclose(stage.score(["q", "q"], ["cats", "dogs"]), [3.0, -2.0])


def test_ranks_by_relevance_with_costs_per_query():
    out = PointwiseLLMReranker(oracle_lm(), DOCS, batch_size=3)(make_run())
    assert [str(d) for d in out.for_query("q1")[0]][:2] == ["d", "a"]
    assert [str(d) for d in out.for_query("q2")[0]][:2] == ["d", "b"]
    meta = out.metadata["llm"]
    assert meta["per_query"]["q1"]["calls"] == 2  # 4 pairs in batches of 3
    assert meta["total"]["prompt_tokens"] == sum(v["prompt_tokens"] for v in meta["per_query"].values())


def test_empty_document_is_scored_as_placeholder():
    seen = []
    lm = FakeLM(logprobs=lambda text, cands: seen.append(text) or [0.0, 0.0])
    PointwiseLLMReranker(lm, {"x": ""})(Run(["q"], ["x"], [1.0], queries=Queries(("q",), ("t",))))
    assert "Passage: (empty document)" in seen[0]


def test_error_names_the_query():
    lm = oracle_lm(context_length=8)
    with pytest.raises(InputError, match=r"query 'q1': .*exceeds the context length 8"):
        PointwiseLLMReranker(lm, DOCS)(make_run())
