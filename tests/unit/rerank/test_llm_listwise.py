"""Listwise strategies with the fake LM: RankGPT permutations (malformed too), FIRST from logits,
full-list ranking, window/stride bookkeeping, context errors, empty documents, per-query costs."""

from __future__ import annotations

import re

import numpy as np
import pytest

from rankstack.errors import InputError
from rankstack.llm.fake import FakeLM
from rankstack.rerank.llm import ListwiseReranker
from rankstack.rerank.llm.oracle import oracle_lm
from rankstack.types import Queries, Run

WORDS = "alpha beta gamma delta epsilon zeta eta theta".split()
DOCS = {f"d{i}": f"passage {w}" for i, w in enumerate(WORDS)}


def by_word(query, passage):
    """Relevance grows down the first-stage list: d7 best, d0 worst (empty: -1)."""
    word = passage.split()[-1]
    return float(WORDS.index(word)) if word in WORDS else -1.0


def make_run(docids=tuple(DOCS), query="theta eta zeta"):
    q = Queries(("q1",), (query,))
    return Run(["q1"] * len(docids), list(docids), np.arange(len(docids), 0, -1.0), queries=q)


def ranked(run):
    return [str(d) for d in run.docids]


@pytest.mark.parametrize("mode", ["generate", "first"])
def test_sliding_windows_bring_the_bottom_to_the_top(mode):
    # best documents at the bottom; one back-to-front pass carries the best window - stride to the top
    out = ListwiseReranker(oracle_lm(by_word), DOCS, mode, window=4, stride=2, depth=None)(make_run())
    assert ranked(out)[:2] == ["d7", "d6"]
    assert out.metadata["llm"]["total"]["calls"] == 3  # windows (4,8) (2,6) (0,4)
    full = ListwiseReranker(oracle_lm(by_word), DOCS, mode, window=None, depth=None)(make_run())
    assert ranked(full) == list(reversed(DOCS))


def test_window_bookkeeping_records_every_window_prompt():
    seen = []

    def respond(text):
        seen.append(re.findall(r"^\[(\d+)\] passage (\w+)$", text, re.M))
        return "1]"

    ListwiseReranker(FakeLM(respond=respond), DOCS, "generate", window=4, stride=2, depth=None)(make_run())
    shown = [[w for _, w in s] for s in seen]
    assert shown == [["epsilon", "zeta", "eta", "theta"], ["gamma", "delta", "epsilon", "zeta"],
                     ["alpha", "beta", "gamma", "delta"]]


def test_malformed_permutations_keep_missing_in_order():
    answers = iter(["3] > [3] > [9] > [1]", "nonsense"])
    stage = ListwiseReranker(FakeLM(respond=lambda t: next(answers)), DOCS, "generate", window=4, stride=4,
                             depth=None)
    out = stage(make_run(tuple(list(DOCS)[:8])))
    # bottom window (d4..d7): "[3] > [3] > [9] > [1]" -> d6, d4, then missing d5, d7; top window: unchanged
    assert ranked(out) == ["d0", "d1", "d2", "d3", "d6", "d4", "d5", "d7"]
    assert stage.repairs == {"repeated": 1, "unknown": 1, "missing": 6, "windows": 2}


def test_first_orders_the_window_by_first_token_logits():
    logits = {"A": 0.1, "B": 3.0, "C": -1.0, "D": 2.0}
    lm = FakeLM(logprobs=lambda text, cands: [logits.get(c, -50.0) for c in cands])
    out = ListwiseReranker(lm, DOCS, "first", window=None, depth=4)(make_run())
    assert ranked(out)[:4] == ["d1", "d3", "d0", "d2"]
    assert ranked(out)[4:] == ["d4", "d5", "d6", "d7"]  # below depth: first-stage order, under the head
    assert lm.calls == {"logprobs": 1}
    assert out.metadata["llm"]["total"]["generated_tokens"] == 0


def test_first_ties_keep_window_order():
    lm = FakeLM(logprobs=lambda text, cands: [0.0] * len(cands))
    assert ranked(ListwiseReranker(lm, DOCS, "first", window=None, depth=None)(make_run())) == list(DOCS)


def test_full_list_too_long_for_the_context_names_window_and_context():
    lm = oracle_lm(context_length=60)
    with pytest.raises(InputError, match=r"query 'q1'.*8 passages needs \d+ prompt tokens.*context length .*60"):
        ListwiseReranker(lm, DOCS, "first", window=None, depth=None, max_passage_tokens=5)(make_run())


def test_window_larger_than_the_context_is_refused_up_front():
    with pytest.raises(InputError, match=r"window of 20 passages .*exceeds the context length 1000"):
        ListwiseReranker(oracle_lm(context_length=1000), DOCS, "first", window=20, max_passage_tokens=100)


def test_first_needs_letters_and_at_most_26():
    with pytest.raises(InputError):
        ListwiseReranker(oracle_lm(), DOCS, "first", window=30, max_passage_tokens=10)
    with pytest.raises(InputError):
        ListwiseReranker(oracle_lm(), DOCS, "first", window=5, ids="numbers")


def test_empty_document_is_shown_as_placeholder_and_ranked():
    docs = dict(DOCS, d2="   ")
    seen = []
    lm = FakeLM(respond=lambda t: seen.append(t) or "3] > [1] > [2]")
    out = ListwiseReranker(lm, docs, "generate", window=None, depth=3)(make_run())
    assert "[3] (empty document)" in seen[0]
    assert ranked(out)[:3] == ["d2", "d0", "d1"]


def test_per_query_costs_sum_to_total():
    q = Queries(("q1", "q2"), ("theta", "alpha"))
    run = Run(["q1"] * 4 + ["q2"] * 4, list(DOCS)[:4] * 2, [4, 3, 2, 1] * 2, queries=q)
    out = ListwiseReranker(oracle_lm(), DOCS, "generate", window=2, stride=1, depth=None)(run)
    meta = out.metadata["llm"]
    assert set(meta["per_query"]) == {"q1", "q2"}
    for key in ("prompt_tokens", "generated_tokens", "calls"):
        assert meta["total"][key] == sum(v[key] for v in meta["per_query"].values()) > 0
    assert meta["per_query"]["q1"]["calls"] == 3 and meta["strategy"] == "listwise"
