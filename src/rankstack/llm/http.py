"""A client for OpenAI-compatible servers (vLLM, llama.cpp server, Ollama, ...): what users run.

Endpoints: ``/v1/completions`` for text prompts (a batch of prompts in one request, ``logprobs=k``
top alternatives per token) and ``/v1/chat/completions`` for :class:`~rankstack.llm.base.Chat`
prompts (one request per prompt, ``logprobs: true, top_logprobs: k``). A Chat's ``prefix`` is sent as
a final assistant message with ``continue_final_message: true`` (vLLM's extension; servers that ignore
it answer from a fresh assistant turn).

Next-token log-probabilities come from the top-``k`` alternatives of the first generated token: a
candidate is matched with and without a leading space; a candidate outside the top ``k`` gets the
smallest returned log-probability minus 1 (a floor: it ranks below every listed candidate).

Failures: a timeout, a connection error, HTTP 429/5xx or an answer that is not the expected JSON is
retried ``retries`` times with exponential backoff (``backoff * 2**attempt`` seconds), then one
InputError names the server, the prompt and the last error. Token counts are the server's ``usage``;
``count_tokens``/``truncate`` (no tokenizer here) estimate tokens as words and punctuation marks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from rankstack.errors import InputError, require
from rankstack.llm.base import Chat, Generation, LLMBackend, Prompt
from rankstack.llm.fake import fake_tokens, truncate_words

__all__ = ["OpenAIBackend", "ServerError"]


class ServerError(Exception):
    """One failed attempt (retried); never escapes the backend."""


class OpenAIBackend(LLMBackend):
    """See the module docstring. ``model`` is the server's model name (sent as ``"model"``)."""

    def __init__(self, base_url: str, model: str | None = None, timeout: float = 60.0, retries: int = 3,
                 backoff: float = 0.5, top_logprobs: int = 20, context_length: int | None = None,
                 api_key: str | None = None) -> None:
        super().__init__()
        httpx = require("httpx", "llm", "the OpenAI-compatible HTTP backend")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InputError(f"retries must be an integer >= 0, got {retries!r}")
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise InputError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.base_url = base_url.rstrip("/")
        if self.base_url.endswith("/v1"):
            self.base_url = self.base_url[:-3]
        self.model = model or "default"
        self.name = f"openai:{self.base_url}:{self.model}"
        self.context_length = int(context_length or 4096)
        self.retries, self.backoff, self.top_logprobs = retries, float(backoff), int(top_logprobs)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout, headers=headers)
        self._httpx = httpx

    # --- token estimates --------------------------------------------------------------------------
    def _text(self, prompt: Prompt) -> str:
        return prompt if isinstance(prompt, str) else "\n".join(c for _, c in prompt.messages) + prompt.prefix

    def count_tokens(self, texts: Sequence[Prompt]) -> list[int]:
        return [len(fake_tokens(self._text(t))) for t in texts]

    def truncate(self, texts: Sequence[str], max_tokens: int) -> list[str]:
        return truncate_words(texts, max_tokens)  # the same word/punctuation estimate

    def candidate_tokens(self, candidates: Sequence[str]) -> list[str]:
        return list(candidates)

    # --- transport ----------------------------------------------------------------------------------
    def _attempt(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """One request; a transient failure or an answer that is not JSON raises ServerError."""
        try:
            resp = self._client.post(self.base_url + path, json=body)
        except self._httpx.TimeoutException:
            raise ServerError(f"no answer within the timeout of {self._client.timeout.read}s") from None
        except self._httpx.TransportError as exc:
            raise ServerError(f"{type(exc).__name__}: {exc}") from None
        if resp.status_code == 429 or resp.status_code >= 500:
            raise ServerError(f"HTTP {resp.status_code}")
        if resp.status_code >= 400:
            raise InputError(f"LLM server {self.base_url} refused the request: HTTP {resp.status_code} "
                             f"{resp.text[:200]!r}", fix="check the server's model name (api_model=)")
        try:
            data = resp.json()
        except (json.JSONDecodeError, ValueError):
            raise ServerError(f"answer is not JSON: {resp.text[:60]!r}") from None
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list) or not data["choices"]:
            raise ServerError(f"answer has no choices: {str(data)[:60]!r}")
        return data

    def _chat_body(self, prompt: Chat, **extra: Any) -> dict[str, Any]:
        msgs = [{"role": r, "content": c} for r, c in prompt.messages]
        body: dict[str, Any] = {"model": self.model, "messages": msgs, **extra}
        if prompt.prefix:
            msgs.append({"role": "assistant", "content": prompt.prefix})
            body.update(continue_final_message=True, add_generation_prompt=False)
        return body

    @staticmethod
    def _match(top: dict[str, float], candidates: Sequence[str]) -> list[float]:
        floor = min(top.values()) - 1.0 if top else -100.0
        out = []
        for c in candidates:
            hits = [lp for tok, lp in top.items() if tok == c or tok.strip() == c.strip()]
            out.append(max(hits) if hits else floor)
        return out

    def _first_top(self, data: dict[str, Any], index: int, chat: bool) -> dict[str, float]:
        try:
            choice = next(c for c in data["choices"] if c.get("index", 0) == index) if not chat else data["choices"][0]
            lp = choice["logprobs"]
            if chat:
                first = lp["content"][0]
                return {t["token"]: float(t["logprob"]) for t in first["top_logprobs"]}
            return {str(k): float(v) for k, v in lp["top_logprobs"][0].items()}
        except (KeyError, IndexError, TypeError, ValueError, StopIteration) as exc:
            raise ServerError(f"answer lacks log-probabilities ({type(exc).__name__})") from None

    def _with_retry(self, path: str, body: dict[str, Any], prompt: Prompt, parse):
        """POST and parse, retrying transient failures and unparseable answers with exponential backoff;
        after the last attempt one InputError names the server, the prompt and the last error."""
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                return parse(self._attempt(path, body))
            except ServerError as exc:
                last = str(exc)
        shown = self._text(prompt)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise InputError(f"LLM server {self.base_url} failed {self.retries + 1} times for the prompt {shown!r}: "
                         f"{last}", fix="check that the server runs and answers OpenAI-compatible JSON with "
                         "logprobs, or raise timeout=/retries=")

    # --- primitives ---------------------------------------------------------------------------------
    def _next_token_logprobs(self, prompts: list[Prompt], token_ids: list[Any]) -> tuple[np.ndarray, int]:
        out = np.empty((len(prompts), len(token_ids)))
        n_prompt = 0
        texts = [i for i, p in enumerate(prompts) if isinstance(p, str)]
        if texts:
            body = {"model": self.model, "prompt": [prompts[i] for i in texts], "max_tokens": 1,
                    "temperature": 0.0, "logprobs": self.top_logprobs}

            def parse(data):
                rows = [self._match(self._first_top(data, k, chat=False), token_ids) for k in range(len(texts))]
                return rows, int((data.get("usage") or {}).get("prompt_tokens", 0))

            rows, n = self._with_retry("/v1/completions", body, prompts[texts[0]], parse)
            out[texts] = rows
            n_prompt += n
        for i, p in enumerate(prompts):
            if isinstance(p, Chat):
                body = self._chat_body(p, max_tokens=1, temperature=0.0, logprobs=True,
                                       top_logprobs=self.top_logprobs)

                def parse(data):
                    return (self._match(self._first_top(data, 0, chat=True), token_ids),
                            int((data.get("usage") or {}).get("prompt_tokens", 0)))

                out[i], n = self._with_retry("/v1/chat/completions", body, p, parse)
                n_prompt += n
        return out, n_prompt

    def _generate(self, prompts: list[Prompt], max_new_tokens: int, temperature: float, seed: int,
                  stop: tuple[str, ...]) -> list[Generation]:
        results: list[Generation | None] = [None] * len(prompts)
        common = {"max_tokens": max_new_tokens, "temperature": temperature, "seed": seed}
        if stop:
            common["stop"] = list(stop)
        texts = [i for i, p in enumerate(prompts) if isinstance(p, str)]
        if texts:
            body = {"model": self.model, "prompt": [prompts[i] for i in texts], "logprobs": 1, **common}
            start = time.perf_counter()

            def parse(data):
                usage = data.get("usage") or {}
                by_index = {int(c.get("index", k)): c for k, c in enumerate(data["choices"])}
                if set(by_index) != set(range(len(texts))):
                    raise ServerError(f"{len(by_index)} choices for {len(texts)} prompts")
                return by_index, usage

            by_index, usage = self._with_retry("/v1/completions", body, prompts[texts[0]], parse)
            took = (time.perf_counter() - start) / len(texts)
            share = int(usage.get("prompt_tokens", 0)) // max(len(texts), 1)
            for k, i in enumerate(texts):
                c = by_index[k]
                lps = tuple(float(x) for x in ((c.get("logprobs") or {}).get("token_logprobs") or []) if x is not None)
                results[i] = Generation(str(c.get("text", "")), lps, share, len(lps) or
                                        int(usage.get("completion_tokens", 0)) // len(texts), took)
        for i, p in enumerate(prompts):
            if isinstance(p, Chat):
                start = time.perf_counter()

                def parse(data):
                    c = data["choices"][0]
                    try:
                        text = c["message"]["content"]
                    except (KeyError, TypeError):
                        raise ServerError("answer has no message content") from None
                    content = (c.get("logprobs") or {}).get("content") or []
                    return str(text or ""), tuple(float(t["logprob"]) for t in content), data.get("usage") or {}

                body = self._chat_body(p, logprobs=True, **common)
                text, lps, usage = self._with_retry("/v1/chat/completions", body, p, parse)
                results[i] = Generation(text, lps, int(usage.get("prompt_tokens", 0)),
                                        int(usage.get("completion_tokens", len(lps))), time.perf_counter() - start)
        return [r for r in results if r is not None]

    def close(self) -> None:
        self._client.close()
