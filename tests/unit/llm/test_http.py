"""The OpenAI-compatible client against the loopback test server: answers, a full sliding-window rerank
through HTTP, timeouts and retries with backoff, garbage and HTTP 500, one clear error naming the query."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.errors import InputError
from rankstack.llm.base import Chat
from rankstack.llm.http import OpenAIBackend
from rankstack.rerank.llm import ListwiseReranker, PointwiseLLMReranker, PRPReranker
from rankstack.rerank.llm.oracle import oracle_lm
from rankstack.types import Queries, Run
from tests.fixtures.llm_server import LLMServer

WORDS = "alpha beta gamma delta epsilon zeta eta theta".split()
DOCS = {f"d{i}": f"passage {w}" for i, w in enumerate(WORDS)}


def by_word(query, passage):
    word = passage.split()[-1]
    return float(WORDS.index(word)) if word in WORDS else -1.0


def make_run():
    return Run(["q1"] * 8, list(DOCS), np.arange(8, 0, -1.0), queries=Queries(("q1",), ("which word",)))


def test_logprobs_and_generation_through_http():
    with LLMServer(oracle_lm(by_word)) as server:
        backend = OpenAIBackend(server.url + "/v1", model="fake", backoff=0.01)
        lp = backend.next_token_logprobs([Chat.user("Passage: passage theta\nQuery: x\nDoes the passage answer"),
                                          "Passage: passage alpha\nQuery: x\nDoes the passage answer"],
                                         ["Yes", "No"])
        assert lp.shape == (2, 2) and lp[0, 0] > lp[0, 1] and lp[1, 0] == lp[1, 1]
        gen = backend.generate(["hello", Chat.user("hi")], max_new_tokens=5)
        assert [g.text for g in gen] == ["", ""] and backend.usage.calls == 2
        assert backend.usage.prompt_tokens > 0
        backend.close()


def test_continuation_likelihood_is_refused_over_http_with_the_fix():
    with LLMServer(oracle_lm(by_word)) as server:
        backend = OpenAIBackend(server.url + "/v1", model="fake", backoff=0.01)
        with pytest.raises(InputError, match=r"not supported: .*log-probabilities of a given continuation.*smollm2"):
            backend.continuation_logprobs(["Passage: alpha"], [" which word"])
        backend.close()


def test_full_sliding_window_rerank_through_http():
    with LLMServer(oracle_lm(by_word)) as server:
        backend = OpenAIBackend(server.url, backoff=0.01)
        listwise = ListwiseReranker(backend, DOCS, "generate", window=4, stride=2, depth=None)(make_run())
        first = ListwiseReranker(backend, DOCS, "first", window=4, stride=2, depth=None)(make_run())
        assert [str(d) for d in listwise.docids][:2] == ["d7", "d6"]
        assert [str(d) for d in first.docids] == [str(d) for d in listwise.docids]
        assert server.requests == 6  # three windows each
        meta = listwise.metadata["llm"]["per_query"]["q1"]
        assert meta["calls"] == 3 and meta["generated_tokens"] > 0 and meta["prompt_tokens"] > 0
        prp = PRPReranker(backend, DOCS, "sorting", k=2, depth=None)(make_run())
        assert [str(d) for d in prp.docids][:2] == ["d7", "d6"]
        backend.close()


@pytest.mark.parametrize("mode", ["delay", "500", "garbage", "nochoices"])
def test_transient_failures_are_retried(mode):
    with LLMServer(oracle_lm(by_word), mode=mode, delay=1.0, fail_first=2) as server:
        backend = OpenAIBackend(server.url, timeout=0.3, retries=2, backoff=0.01)
        out = PointwiseLLMReranker(backend, DOCS, depth=2)(make_run())
        assert server.requests >= 3  # two failures, then the answers
        assert len(out) == 8
        backend.close()


@pytest.mark.parametrize("mode,why", [("delay", "timeout"), ("500", "HTTP 500"), ("garbage", "not JSON")])
def test_persistent_failure_is_one_clear_error_naming_the_query(mode, why):
    with LLMServer(oracle_lm(), mode=mode, delay=1.0) as server:
        backend = OpenAIBackend(server.url, timeout=0.2, retries=2, backoff=0.01)
        with pytest.raises(InputError, match=rf"query 'q1': LLM server .* failed 3 times for the prompt .*{why}"):
            ListwiseReranker(backend, DOCS, "generate", window=4, stride=2)(make_run())
        assert server.requests == 3
        backend.close()


def test_backoff_is_exponential(monkeypatch):
    import rankstack.llm.http as http

    sleeps = []
    monkeypatch.setattr(http.time, "sleep", lambda s: sleeps.append(s))
    with LLMServer(mode="500") as server:
        backend = OpenAIBackend(server.url, retries=3, backoff=0.5)
        with pytest.raises(InputError):
            backend.generate(["x"])
        backend.close()
    assert sleeps == [0.5, 1.0, 2.0]


def test_bad_arguments():
    with pytest.raises(InputError, match="retries"):
        OpenAIBackend("http://127.0.0.1:1", retries=-1)
    with pytest.raises(InputError, match="timeout"):
        OpenAIBackend("http://127.0.0.1:1", timeout=0)
