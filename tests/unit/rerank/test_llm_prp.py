"""PRP with the fake LM: both orders are asked and aggregated; position bias cancels; all three variants."""

from __future__ import annotations

import re

import numpy as np
import pytest

from rankstack.errors import InputError
from rankstack.llm.fake import FakeLM
from rankstack.rerank.llm import PRPReranker
from rankstack.rerank.llm.oracle import oracle_lm
from rankstack.rerank.llm.prp import prp_allpairs_scores
from rankstack.types import Queries, Run

WORDS = "alpha beta gamma delta epsilon zeta".split()
DOCS = {f"d{i}": f"passage {w}" for i, w in enumerate(WORDS)}
RUN = Run(["q1"] * 6, list(DOCS), np.arange(6, 0, -1.0), queries=Queries(("q1",), ("query",)))


def by_word(query, passage):
    return float(WORDS.index(passage.split()[-1]))


def ranked(run):
    return [str(d) for d in run.docids]


@pytest.mark.parametrize("variant,k,expect", [("allpairs", 10, ["d5", "d4", "d3", "d2", "d1", "d0"]),
                                              ("sorting", 2, ["d5", "d4", "d0", "d1", "d2", "d3"]),
                                              ("sliding", 2, ["d5", "d4", "d0", "d1", "d2", "d3"])])
def test_variants_find_the_best(variant, k, expect):
    out = PRPReranker(oracle_lm(by_word), DOCS, variant, k=k, depth=None)(RUN)
    assert ranked(out) == expect


def test_both_orders_are_asked_for_every_pair():
    seen = []

    def logprobs(text, cands):
        a, b = re.findall(r'Passage [AB]: "passage (\w+)"', text)
        seen.append((a, b))
        return [0.0, 0.0]

    PRPReranker(FakeLM(logprobs=logprobs), DOCS, "allpairs", depth=3)(RUN)
    assert sorted(seen) == sorted([("alpha", "beta"), ("beta", "alpha"), ("alpha", "gamma"), ("gamma", "alpha"),
                                   ("beta", "gamma"), ("gamma", "beta")])


def test_position_bias_cancels():
    # a model that always answers "A" prefers whichever passage comes first: both orders disagree on
    # every pair, every pair is a tie (0.5 each), and the first-stage order is kept
    always_a = FakeLM(logprobs=lambda text, cands: [5.0, 0.0])
    assert ranked(PRPReranker(always_a, DOCS, "allpairs", depth=None)(RUN)) == list(DOCS)
    assert ranked(PRPReranker(always_a, DOCS, "sorting", k=3, depth=None)(RUN)) == list(DOCS)
    assert ranked(PRPReranker(always_a, DOCS, "sliding", k=3, depth=None)(RUN)) == list(DOCS)


def test_allpairs_aggregation_counts_wins_and_half_ties():
    pref = np.array([[0.5, 1.0, 0.5], [0.0, 0.5, 0.0], [0.5, 1.0, 0.5]])
    assert prp_allpairs_scores(pref).tolist() == [1.5, 0.0, 1.5]


def test_costs_and_comparison_counts():
    out = PRPReranker(oracle_lm(by_word), DOCS, "allpairs", depth=4)(RUN)
    total = out.metadata["llm"]["total"]
    assert total["calls"] == 1  # all 6 pairs x 2 orders in one batched call
    sliding = PRPReranker(oracle_lm(by_word), DOCS, "sliding", k=1, depth=4)(RUN)
    assert sliding.metadata["llm"]["total"]["calls"] == 3  # one pass: n - 1 comparisons


def test_unknown_variant():
    with pytest.raises(InputError, match="unknown variant 'bubble'"):
        PRPReranker(oracle_lm(), DOCS, "bubble")
