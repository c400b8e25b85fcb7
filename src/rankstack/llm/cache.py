"""An on-disk answer cache around any backend: a repeated experiment makes no model calls.

Why sqlite3: one file, atomic transactions, safe for several processes reading and writing (WAL), no
extra dependency. Keys are SHA-256 of (model name, primitive, prompt text, parameters); values are
JSON (never pickle). The model name of a local backend includes a digest of its weights, so another
model (or a re-trained adapter) never reads these answers. Sampled generations are cached too: they
are seeded, hence reproducible.

A hit adds one to ``usage.cache_hits`` and no tokens or seconds (see :mod:`rankstack.llm.base`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.llm.base import Generation, LLMBackend, Prompt, prompt_key

__all__ = ["CachedBackend"]


class CachedBackend(LLMBackend):
    """Answers ``inner``'s calls from ``path`` (an sqlite file) when it has seen them, else asks ``inner``."""

    def __init__(self, inner: LLMBackend, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.inner = inner
        self.name = inner.name
        self.context_length = inner.context_length
        self.usage = inner.usage  # one meter: hits and real work are reported together
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), timeout=60, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.commit()

    def __getattr__(self, item: str) -> Any:  # render(), tokenizer, ... of the wrapped backend
        if item.startswith("_") or item == "inner":
            raise AttributeError(item)
        return getattr(self.inner, item)

    def _key(self, *parts: Any) -> str:
        raw = json.dumps([self.name, *parts], ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()

    def _get(self, keys: Sequence[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        with self._lock:
            for s in range(0, len(keys), 500):
                chunk = list(keys[s:s + 500])
                q = f"SELECT key, value FROM answers WHERE key IN ({','.join('?' * len(chunk))})"
                found.update({k: json.loads(v) for k, v in self._db.execute(q, chunk)})
        return found

    def _put(self, items: dict[str, Any]) -> None:
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?)",
                                 [(k, json.dumps(v, allow_nan=False)) for k, v in items.items()])
            self._db.commit()

    # the protocol: token helpers pass through, the primitives are cached ------------------------------
    def count_tokens(self, texts: Sequence[Prompt]) -> list[int]:
        return self.inner.count_tokens(texts)

    def truncate(self, texts: Sequence[str], max_tokens: int) -> list[str]:
        return self.inner.truncate(texts, max_tokens)

    def candidate_tokens(self, candidates: Sequence[str]) -> list[Any]:
        return self.inner.candidate_tokens(candidates)

    def next_token_logprobs(self, prompts: Sequence[Prompt], candidates: Sequence[str]) -> np.ndarray:
        prompts = list(prompts)
        keys = [self._key("logprobs", prompt_key(p), list(candidates)) for p in prompts]
        found = self._get(keys)
        out = np.empty((len(prompts), len(candidates)))
        todo = [i for i, k in enumerate(keys) if k not in found]
        for i, k in enumerate(keys):
            if k in found:
                out[i] = found[k]
        self.usage.add(cache_hits=len(prompts) - len(todo))
        if todo:
            fresh = self.inner.next_token_logprobs([prompts[i] for i in todo], candidates)
            out[todo] = fresh
            self._put({keys[i]: [float(x) for x in row] for i, row in zip(todo, fresh)})
        return out

    def continuation_logprobs(self, prompts: Sequence[Prompt], continuations: Sequence[str]) -> list[np.ndarray]:
        prompts, continuations = list(prompts), [str(c) for c in continuations]
        if len(prompts) != len(continuations):  # the inner backend words the error
            return self.inner.continuation_logprobs(prompts, continuations)
        keys = [self._key("continuation", prompt_key(p), c) for p, c in zip(prompts, continuations)]
        found = self._get(keys)
        out: list[np.ndarray] = [np.asarray(found[k], dtype=np.float64) if k in found else np.zeros(0) for k in keys]
        todo = [i for i, k in enumerate(keys) if k not in found]
        self.usage.add(cache_hits=len(prompts) - len(todo))
        if todo:
            fresh = self.inner.continuation_logprobs([prompts[i] for i in todo], [continuations[i] for i in todo])
            for i, values in zip(todo, fresh):
                out[i] = values
            self._put({keys[i]: [float(x) for x in out[i]] for i in todo})
        return out

    def generate(self, prompts: Sequence[Prompt], max_new_tokens: int = 64, temperature: float = 0.0,
                 seed: int = 0, stop: Sequence[str] = ()) -> list[Generation]:
        prompts = list(prompts)
        params = {"max_new_tokens": max_new_tokens, "temperature": float(temperature),
                  "seed": int(seed) if temperature > 0 else 0, "stop": list(stop)}
        keys = [self._key("generate", prompt_key(p), params) for p in prompts]
        found = self._get(keys)
        out: list[Generation | None] = [None] * len(prompts)
        todo = []
        for i, k in enumerate(keys):
            if k in found:
                v = found[k]
                out[i] = Generation(v["text"], tuple(v["token_logprobs"]), v["prompt_tokens"],
                                    v["generated_tokens"], 0.0, cached=True)
            else:
                todo.append(i)
        self.usage.add(cache_hits=len(prompts) - len(todo))
        if todo:
            fresh = self.inner.generate([prompts[i] for i in todo], max_new_tokens, temperature, seed, stop)
            store = {}
            for i, g in zip(todo, fresh):
                out[i] = g
                store[keys[i]] = {"text": g.text, "token_logprobs": list(g.token_logprobs),
                                  "prompt_tokens": g.prompt_tokens, "generated_tokens": g.generated_tokens}
            self._put(store)
        return [g for g in out if g is not None]

    def segment_attention(self, segments: Sequence[str], source: int) -> np.ndarray:
        key = self._key("attention", list(segments), int(source))
        found = self._get([key])
        if key in found:
            self.usage.add(cache_hits=1)
            return np.asarray(found[key], dtype=np.float64)
        out = self.inner.segment_attention(segments, source)
        self._put({key: [float(x) for x in out]})
        return out

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self.inner.close()
