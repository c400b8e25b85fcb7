"""The LLM backend protocol shared by LLM rerankers (issue 16) and query generation (issue 13).

Why one protocol: every LLM ranking strategy needs only a few primitives -- batched log-probabilities
of given single-token continuations (pointwise yes/no, PRP "A"/"B", FIRST's identifier logits), the
per-token log-probabilities of a given multi-token continuation (query likelihood, UPR), batched
generation with per-token log-probabilities (listwise permutations, synthetic queries) and, for
in-context reranking, attention maps. A local transformers model, an OpenAI-compatible server
(vLLM, llama.cpp server, Ollama) and a scripted fake all offer them, so strategies are written once.

Prompts: a plain ``str`` is sent as-is (a completion prompt); a :class:`Chat` is rendered with the
model's chat template (instruct models such as SmolLM2-135M-Instruct need it), its ``prefix``
pre-filled as the start of the assistant's answer (e.g. ``"["`` so that the next token is an
identifier).

Cost accounting: every backend call adds to ``backend.usage`` (prompt tokens, generated tokens,
seconds, calls, cache hits). Strategies read the difference around one query's work
(:meth:`Usage.minus`) to report per-query cost. A cache hit adds one to ``cache_hits`` and nothing
else: tokens and seconds count work that was actually done.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Iterator, Union

import numpy as np

from rankstack.errors import InputError

__all__ = ["Chat", "Prompt", "Generation", "Usage", "LLMBackend", "not_supported", "prompt_key", "cut_at_stop",
           "length_batches"]


@dataclass(frozen=True)
class Chat:
    """A chat prompt: ``(role, content)`` messages, rendered by the backend's chat template.

    ``prefix`` is pre-filled as the beginning of the assistant's reply (not generated, not counted
    as generated tokens).
    """

    messages: tuple[tuple[str, str], ...]
    prefix: str = ""

    @classmethod
    def user(cls, content: str, system: str | None = None, prefix: str = "") -> Chat:
        msgs = ((("system", system),) if system else ()) + (("user", content),)
        return cls(msgs, prefix)


Prompt = Union[str, Chat]


def prompt_key(prompt: Prompt) -> str:
    """A stable text form of a prompt for cache keys and error messages."""
    if isinstance(prompt, Chat):
        body = "\x1e".join(f"{r}\x1f{c}" for r, c in prompt.messages)
        return f"chat\x1d{body}\x1d{prompt.prefix}"
    return f"text\x1d{prompt}"


@dataclass(frozen=True)
class Generation:
    """One generated continuation: its text, the log-probability of each generated token, the number
    of prompt and generated tokens, and the seconds its batch took divided among the batch."""

    text: str
    token_logprobs: tuple[float, ...]
    prompt_tokens: int
    generated_tokens: int
    seconds: float
    cached: bool = False


@dataclass
class Usage:
    """Cumulative cost of a backend's calls (see the module docstring for what a cache hit adds)."""

    prompt_tokens: int = 0
    generated_tokens: int = 0
    seconds: float = 0.0
    calls: int = 0
    cache_hits: int = 0

    def add(self, prompt_tokens: int = 0, generated_tokens: int = 0, seconds: float = 0.0, calls: int = 0,
            cache_hits: int = 0) -> None:
        self.prompt_tokens += int(prompt_tokens)
        self.generated_tokens += int(generated_tokens)
        self.seconds += float(seconds)
        self.calls += int(calls)
        self.cache_hits += int(cache_hits)

    def copy(self) -> Usage:
        return Usage(**asdict(self))

    def minus(self, earlier: Usage) -> Usage:
        return Usage(self.prompt_tokens - earlier.prompt_tokens, self.generated_tokens - earlier.generated_tokens,
                     self.seconds - earlier.seconds, self.calls - earlier.calls,
                     self.cache_hits - earlier.cache_hits)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["seconds"] = round(out["seconds"], 6)
        return out


def not_supported(backend: str, what: str, fix: str) -> InputError:
    """The one error for a primitive a backend cannot offer (e.g. attention over HTTP)."""
    return InputError(f"not supported: backend {backend!r} cannot give {what}", fix=fix)


class LLMBackend:
    """Base class of every backend. Subclasses implement the ``_``-prefixed primitives; the public
    methods check arguments, time the call and add to :attr:`usage`.

    ``name`` identifies the model for cache keys (two different models must not share a name; the
    transformers backend derives it from the weights' content).
    """

    name: str = "llm"
    context_length: int = 2048

    def __init__(self) -> None:
        self.usage = Usage()

    # --- what subclasses implement ----------------------------------------------------------------
    def count_tokens(self, texts: Sequence[Prompt]) -> list[int]:
        """Tokens of each prompt as the model sees it (chat template included)."""
        raise NotImplementedError

    def truncate(self, texts: Sequence[str], max_tokens: int) -> list[str]:
        """Each text cut to at most ``max_tokens`` tokens (RankGPT truncates passages the same way)."""
        raise NotImplementedError

    def _next_token_logprobs(self, prompts: list[Prompt], token_ids: list[Any]) -> tuple[np.ndarray, int]:
        raise NotImplementedError

    def _generate(self, prompts: list[Prompt], max_new_tokens: int, temperature: float, seed: int,
                  stop: tuple[str, ...]) -> list[Generation]:
        raise NotImplementedError

    def _continuation_logprobs(self, prompts: list[Prompt], continuations: list[str]) -> tuple[list[np.ndarray], int]:
        raise not_supported(self.name, "log-probabilities of a given continuation",
                            "use a local transformers backend (model='smollm2', a GGUF file or a model folder)")

    def candidate_tokens(self, candidates: Sequence[str]) -> list[Any]:
        """The single token of each candidate continuation, or InputError naming one that is several."""
        raise NotImplementedError

    def segment_attention(self, segments: Sequence[str], source: int) -> np.ndarray:
        """Attention from the tokens of ``segments[source]`` to each segment's tokens (ICR), summed over
        layers, heads and the segment's tokens, averaged over the source's tokens: ``[len(segments)]``."""
        raise not_supported(self.name, "attention maps",
                            "use a local transformers backend (model='smollm2', a GGUF file or a model folder)")

    # --- the public, accounted API ----------------------------------------------------------------
    @contextmanager
    def _timed(self) -> Iterator[list[float]]:
        box = [0.0]
        start = time.perf_counter()
        try:
            yield box
        finally:
            box[0] = time.perf_counter() - start

    def next_token_logprobs(self, prompts: Sequence[Prompt], candidates: Sequence[str]) -> np.ndarray:
        """Log-probabilities ``[n_prompts, n_candidates]`` that the next token is each candidate.

        Each candidate must be one token of this model (e.g. ``"Yes"``, ``"A"``); the values are
        log-softmax over the whole vocabulary, so they are comparable across prompts.
        """
        prompts = list(prompts)
        if not candidates:
            raise InputError("next_token_logprobs needs at least one candidate continuation")
        if not prompts:
            return np.zeros((0, len(candidates)))
        ids = self.candidate_tokens(candidates)
        with self._timed() as took:
            out, n_prompt = self._next_token_logprobs(prompts, ids)
        self.usage.add(prompt_tokens=n_prompt, seconds=took[0], calls=1)
        out = np.asarray(out, dtype=np.float64).reshape(len(prompts), len(candidates))
        return out

    def continuation_logprobs(self, prompts: Sequence[Prompt], continuations: Sequence[str]) -> list[np.ndarray]:
        """Teacher-forced log-probability of each token of ``continuations[i]`` after ``prompts[i]``.

        One array per pair (as many values as the continuation has tokens for this model). The
        continuation is appended to the rendered prompt as-is (a Chat's ``prefix`` included), so a
        leading space belongs to the caller. Empty continuations are refused: they have no likelihood.
        """
        prompts, continuations = list(prompts), [str(c) for c in continuations]
        if len(prompts) != len(continuations):
            raise InputError(f"continuation_logprobs needs one continuation per prompt, got {len(prompts)} prompts "
                             f"and {len(continuations)} continuations")
        empty = next((i for i, c in enumerate(continuations) if not c.strip()), None)
        if empty is not None:
            raise InputError(f"continuation {empty} is empty: it has no likelihood", fix="give non-empty text")
        if not prompts:
            return []
        with self._timed() as took:
            out, n_tokens = self._continuation_logprobs(prompts, continuations)
        self.usage.add(prompt_tokens=n_tokens, seconds=took[0], calls=1)
        return [np.asarray(v, dtype=np.float64) for v in out]

    def generate(self, prompts: Sequence[Prompt], max_new_tokens: int = 64, temperature: float = 0.0,
                 seed: int = 0, stop: Sequence[str] = ()) -> list[Generation]:
        """Continue each prompt: greedy when ``temperature == 0``, else sampled with ``seed`` (the same
        seed gives the same text). Generation stops at the model's end token, ``max_new_tokens`` or
        any ``stop`` string (not included in the text)."""
        prompts = list(prompts)
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise InputError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
        if not isinstance(temperature, (int, float)) or temperature < 0:
            raise InputError(f"temperature must be a number >= 0, got {temperature!r}")
        if not prompts:
            return []
        gens = self._generate(prompts, max_new_tokens, float(temperature), int(seed), tuple(stop))
        self.usage.add(prompt_tokens=sum(g.prompt_tokens for g in gens if not g.cached),
                       generated_tokens=sum(g.generated_tokens for g in gens if not g.cached),
                       seconds=sum(g.seconds for g in gens if not g.cached),
                       calls=1 if any(not g.cached for g in gens) else 0)
        return gens

    def close(self) -> None:
        """Release resources (HTTP sessions, cache files)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to the first stop string, and whether one was found."""
    cut = min((text.find(s) for s in stop if s and s in text), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def length_batches(lengths: Sequence[int], batch_size: int, max_tokens: int | None = None) -> list[list[int]]:
    """Indices sorted by length (longest first) cut into batches of at most ``batch_size`` prompts and,
    when given, ``max_tokens`` padded tokens: little compute is spent on padding."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        width = lengths[cur[0]] if cur else lengths[i]
        if cur and (len(cur) >= batch_size or (max_tokens and width * (len(cur) + 1) > max_tokens)):
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches
