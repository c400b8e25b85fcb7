"""The base protocol through the scripted fake: accounting, candidate and argument checks, stops."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.errors import InputError
from rankstack.llm.base import Chat, Usage, cut_at_stop, length_batches
from rankstack.llm.fake import FakeLM


def test_logprobs_are_normalised_and_accounted():
    lm = FakeLM(logprobs=lambda text, c: [1.0, 0.0])
    out = lm.next_token_logprobs(["one two", Chat.user("three", prefix="[")], ["Yes", "No"])
    np.testing.assert_allclose(np.exp(out).sum(1), [1.0, 1.0])
    assert lm.usage.calls == 1 and lm.usage.prompt_tokens == 2 + len("user : three assistant : [".split())


def test_candidates_must_be_single_tokens():
    with pytest.raises(InputError, match=r"'\[1\]' is 3 tokens"):
        FakeLM().next_token_logprobs(["x"], ["[1]"])


def test_generation_counts_tokens_and_cuts_stops():
    lm = FakeLM(respond=lambda t: "a b c STOP d e")
    g = lm.generate(["x"], max_new_tokens=3)[0]
    assert g.text == "a b c" and g.generated_tokens == 3 and len(g.token_logprobs) == 3
    g = lm.generate(["x"], max_new_tokens=10, stop=["STOP"])[0]
    assert g.text == "a b c " and lm.usage.generated_tokens == 3 + 6


def test_bad_generation_arguments():
    with pytest.raises(InputError):
        FakeLM().generate(["x"], max_new_tokens=0)
    with pytest.raises(InputError):
        FakeLM().generate(["x"], temperature=-1)


def test_context_length_is_enforced():
    with pytest.raises(InputError, match="exceeds the context length 3"):
        FakeLM(context_length=3).next_token_logprobs(["a b c d"], ["x"])


def test_truncate_and_count():
    lm = FakeLM()
    assert lm.truncate(["a, b c d"], 3) == ["a, b"]
    assert lm.count_tokens(["a, b"]) == [3]


def test_helpers():
    u = Usage(10, 2, 1.5, 1, 0)
    assert u.minus(Usage(4, 1, 0.5, 1, 0)).to_dict() == {"prompt_tokens": 6, "generated_tokens": 1, "seconds": 1.0,
                                                         "calls": 0, "cache_hits": 0}
    assert cut_at_stop("abc\n\nd", ["\n\n"]) == ("abc", True)
    batches = length_batches([5, 50, 10, 40], batch_size=2)
    assert batches == [[1, 3], [2, 0]]
    assert length_batches([5, 50, 10, 40], batch_size=4, max_tokens=100) == [[1, 3], [2, 0]]
