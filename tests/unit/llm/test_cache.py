"""The on-disk answer cache: a repeated run makes no backend calls, hits are counted, keys separate
models, prompts and parameters."""

from __future__ import annotations

import numpy as np

from rankstack.llm.base import Chat
from rankstack.llm.cache import CachedBackend
from rankstack.llm.fake import FakeLM
from rankstack.llm.models import load_backend
from rankstack.rerank.llm import ICRReranker, ListwiseReranker, PRPReranker
from rankstack.rerank.llm.oracle import oracle_lm
from rankstack.types import Queries, Run

DOCS = {f"d{i}": f"passage number {i} about w{i}" for i in range(6)}
RUN = Run(["q"] * 6, list(DOCS), np.arange(6, 0, -1.0), queries=Queries(("q",), ("w4 w5",)))


def test_second_run_makes_no_backend_calls(tmp_path):
    lm = oracle_lm()
    stages = lambda b: [ListwiseReranker(b, DOCS, "generate", window=3, stride=2, depth=None),  # noqa: E731
                        ListwiseReranker(b, DOCS, "first", window=3, stride=2, depth=None),
                        PRPReranker(b, DOCS, "allpairs", depth=4), ICRReranker(b, DOCS, depth=None)]
    first = [s(RUN) for s in stages(CachedBackend(lm, tmp_path / "c.sqlite"))]
    calls = dict(lm.calls)
    assert calls == {"generate": 3, "logprobs": 4, "attention": 2}
    again = CachedBackend(lm, tmp_path / "c.sqlite")  # a new process would open the same file
    second = [s(RUN) for s in stages(again)]
    assert dict(lm.calls) == calls  # no new backend call
    for a, b in zip(first, second):
        assert list(a.docids) == list(b.docids)
        total = b.metadata["llm"]["total"]
        assert total["seconds"] == 0 and total["calls"] == 0 and total["prompt_tokens"] == 0
        assert total["cache_hits"] > 0
    assert again.usage.cache_hits == 3 + 3 + 12 + 2


def test_keys_separate_models_prompts_and_parameters(tmp_path):
    a, b = FakeLM(name="m1"), FakeLM(name="m2")
    ca, cb = CachedBackend(a, tmp_path / "c.sqlite"), CachedBackend(b, tmp_path / "c.sqlite")
    ca.next_token_logprobs(["p"], ["x", "y"])
    cb.next_token_logprobs(["p"], ["x", "y"])
    assert a.calls["logprobs"] == b.calls["logprobs"] == 1
    ca.next_token_logprobs([Chat.user("p")], ["x", "y"])
    ca.generate(["p"], max_new_tokens=3)
    ca.generate(["p"], max_new_tokens=4)
    ca.generate(["p"], max_new_tokens=4, temperature=0.7, seed=1)
    ca.generate(["p"], max_new_tokens=4, temperature=0.7, seed=2)
    ca.generate(["p"], max_new_tokens=4, temperature=0.7, seed=2)
    assert a.calls == {"logprobs": 2, "generate": 4}


def test_partial_hits_in_one_batch(tmp_path):
    lm = FakeLM()
    c = CachedBackend(lm, tmp_path / "c.sqlite")
    one = c.next_token_logprobs(["a", "b"], ["x", "y"])
    both = c.next_token_logprobs(["b", "c", "a"], ["x", "y"])
    np.testing.assert_allclose(both[[0, 2]], one[[1, 0]])
    assert c.usage.cache_hits == 2 and lm.calls["logprobs"] == 2


def test_load_backend_wraps_in_the_cache_folder(tmp_path):
    backend = load_backend("fake", cache_dir=tmp_path)
    assert isinstance(backend, CachedBackend) and (tmp_path / "llm.sqlite").is_file()
    assert not isinstance(load_backend("fake", cache_dir=tmp_path, cache=False), CachedBackend)


def test_continuation_logprobs_are_cached(tmp_path):
    lm = FakeLM()
    cached = CachedBackend(lm, tmp_path / "c.sqlite")
    prompts, conts = [Chat.user("cats purr"), "dogs bark"], [" cats", " purr loudly"]
    first = cached.continuation_logprobs(prompts, conts)
    assert lm.calls["continuation"] == 1
    again = CachedBackend(lm, tmp_path / "c.sqlite")
    second = again.continuation_logprobs(prompts[::-1] + [prompts[0]], conts[::-1] + [" dogs"])  # 2 hits, 1 new
    assert lm.calls["continuation"] == 2 and again.usage.cache_hits == 2
    np.testing.assert_allclose(second[0], first[1])
    np.testing.assert_allclose(second[1], first[0])
    assert [len(v) for v in second] == [2, 1, 1]
