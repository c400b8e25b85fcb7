"""A deterministic, scripted language model for logic tests (and for the loopback test server).

Why: the logic of a ranking strategy (parsing, aggregation, windows, costs, caching) must be tested
without a model whose answers are slow and hard to predict. The fake tokenises into words and
punctuation (``\\w+|[^\\w\\s]``), renders a Chat as ``role: content`` lines, and answers from three
scriptable functions of the rendered prompt text:

- ``logprobs(text, candidates) -> scores``: next-token scores, log-softmaxed over the candidates
  (default: a hash of the prompt and candidate, i.e. arbitrary but repeatable);
- ``respond(text) -> str``: the generated text (default: an empty answer);
- ``attention(segments, source) -> weights``: one weight per segment (default: the share of the
  source segment's words found in each segment);
- ``likelihood(text, tokens) -> log-probabilities``: one per token of a given continuation (default:
  log 0.5 for a word of the prompt, log 0.05 for any other token: overlap reads as likely).

``calls`` counts calls per primitive, so a test can assert that a cached re-run made none.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rankstack.errors import InputError
from rankstack.llm.base import Generation, LLMBackend, Prompt, cut_at_stop

__all__ = ["FakeLM", "fake_tokens", "truncate_words"]

_TOKEN = re.compile(r"\w+|[^\w\s]")


def fake_tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def truncate_words(texts: Sequence[str], max_tokens: int) -> list[str]:
    """Each text cut after its ``max_tokens``-th word or punctuation mark (the fake's tokens)."""
    out = []
    for t in texts:
        spans = [m.span() for m in _TOKEN.finditer(t)]
        out.append(t if len(spans) <= max_tokens else t[:spans[max_tokens - 1][1]])
    return out


def _hash_score(*parts: str) -> float:
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:4], "little") / 2**32 * 4.0 - 2.0


def _copy_likelihood(text: str, tokens: Sequence[str]) -> list[float]:
    seen = {w.lower() for w in fake_tokens(text)}
    return [float(np.log(0.5 if t.lower() in seen else 0.05)) for t in tokens]


def _overlap(segments: Sequence[str], source: int) -> np.ndarray:
    words = {w.lower() for w in fake_tokens(segments[source]) if w.isalnum()}
    out = []
    for seg in segments:
        toks = [w.lower() for w in fake_tokens(seg) if w.isalnum()]
        out.append(sum(w in words for w in toks) / max(len(toks), 1) if words else 0.0)
    return np.asarray(out, dtype=np.float64)


class FakeLM(LLMBackend):
    """See the module docstring. ``delay`` seconds are slept per call (to exercise timeouts)."""

    def __init__(self, logprobs: Callable[[str, list[str]], Sequence[float]] | None = None,
                 respond: Callable[[str], str] | None = None,
                 attention: Callable[[Sequence[str], int], Sequence[float]] | None = None,
                 likelihood: Callable[[str, list[str]], Sequence[float]] | None = None,
                 name: str = "fake", context_length: int = 4096, delay: float = 0.0) -> None:
        super().__init__()
        self.name = name
        self.context_length = context_length
        self._logprobs = logprobs or (lambda text, cands: [_hash_score(text, c) for c in cands])
        self._respond = respond or (lambda text: "")
        self._attention = attention or _overlap
        self._likelihood = likelihood or _copy_likelihood
        self.delay = delay
        self.calls: Counter[str] = Counter()

    def render(self, prompt: Prompt) -> str:
        if isinstance(prompt, str):
            return prompt
        return "".join(f"{role}: {content}\n" for role, content in prompt.messages) + "assistant: " + prompt.prefix

    def count_tokens(self, texts: Sequence[Prompt]) -> list[int]:
        return [len(fake_tokens(self.render(t))) for t in texts]

    def truncate(self, texts: Sequence[str], max_tokens: int) -> list[str]:
        return truncate_words(texts, max_tokens)

    def candidate_tokens(self, candidates: Sequence[str]) -> list[str]:
        for c in candidates:
            if len(fake_tokens(c)) != 1:
                raise InputError(f"candidate continuation {c!r} is {len(fake_tokens(c))} tokens for model "
                                 f"{self.name!r}, not one", fix="use single-token identifiers")
        return list(candidates)

    def _check(self, text: str, extra: int = 0) -> int:
        n = len(fake_tokens(text))
        if n + extra > self.context_length:
            raise InputError(f"a prompt of {n + extra} tokens exceeds the context length {self.context_length} "
                             f"of model {self.name!r}", fix="use a smaller window or fewer tokens per passage")
        return n

    def _sleep(self) -> None:
        if self.delay:
            time.sleep(self.delay)

    def _next_token_logprobs(self, prompts: list[Prompt], token_ids: list[Any]) -> tuple[np.ndarray, int]:
        self.calls["logprobs"] += 1
        self._sleep()
        out = np.empty((len(prompts), len(token_ids)))
        n = 0
        for i, p in enumerate(prompts):
            text = self.render(p)
            n += self._check(text)
            raw = np.asarray(self._logprobs(text, list(token_ids)), dtype=np.float64)
            out[i] = raw - np.logaddexp.reduce(raw)
        return out, n

    def _continuation_logprobs(self, prompts: list[Prompt], continuations: list[str]) -> tuple[list[np.ndarray], int]:
        self.calls["continuation"] += 1
        self._sleep()
        out, n = [], 0
        for p, c in zip(prompts, continuations):
            text, tokens = self.render(p), fake_tokens(c)
            n += self._check(text, len(tokens)) + len(tokens)
            values = np.asarray(self._likelihood(text, tokens), dtype=np.float64)
            if values.shape != (len(tokens),) or np.any(values > 0):
                raise ValueError(f"scripted likelihood gave {values!r} for {len(tokens)} tokens")
            out.append(values)
        return out, n

    def _generate(self, prompts: list[Prompt], max_new_tokens: int, temperature: float, seed: int,
                  stop: tuple[str, ...]) -> list[Generation]:
        self.calls["generate"] += 1
        self._sleep()
        out = []
        for p in prompts:
            text = self.render(p)
            n = self._check(text, max_new_tokens)
            answer = self._respond(text)
            spans = [m.span() for m in _TOKEN.finditer(answer)]
            if len(spans) > max_new_tokens:
                answer = answer[:spans[max_new_tokens - 1][1]]
                spans = spans[:max_new_tokens]
            answer, _ = cut_at_stop(answer, stop)
            out.append(Generation(answer, tuple(-0.1 for _ in spans), n, len(spans), 0.0))
        return out

    def segment_attention(self, segments: Sequence[str], source: int) -> np.ndarray:
        self.calls["attention"] += 1
        self._sleep()
        start = time.perf_counter()
        n = self._check("".join(segments))
        out = np.asarray(self._attention(list(segments), source), dtype=np.float64)
        self.usage.add(prompt_tokens=n, seconds=time.perf_counter() - start, calls=1)
        return out
