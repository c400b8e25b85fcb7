"""Query generators that ask a language model: zero-shot instruct prompts and InPars few-shot prompts.

- ``llm-instruct``: an instruction-tuned model (SmolLM2-135M-Instruct by default) with its chat
  template and a zero-shot instruction, as in Promptagator's zero-shot baseline and UDAPDR
  (Saad-Falcon et al. 2023). Prompt variants are named; benchmarks/synth.md measures them (a bare
  "write a query" prompt makes a 135M model copy the passage, which :mod:`rankstack.synth.quality`
  rejects).
- ``inpars``: the few-shot prompt of InPars ("InPars: Data Augmentation for Information Retrieval
  using Large Language Models", Bonifacio et al. 2022): three ``Document: ... / Relevant Query: ...``
  examples, then the target document, continued by a *base* model (gemma-3-270m). The examples here
  are our own (InPars used MS MARCO's); the prompt text is hashed into ``prompt_id``.

Both keep the generated query's mean token log-probability as its score (InPars's filter keeps the
top fraction by it: :func:`rankstack.synth.filters.inpars_filter`). Generation is batched by the
backend (``load_backend(batch_size=...)``: length-sorted, left-padded batches).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rankstack.data.beir import Document
from rankstack.errors import InputError
from rankstack.llm.base import Chat, LLMBackend
from rankstack.rerank.llm.prompts import QUESTION_INSTRUCTION, QUESTION_PREFIX
from rankstack.synth.generators import Generated, QueryGenerator, short_hash
from rankstack.synth.quality import clean_query, rejection_reason

__all__ = ["InstructGenerator", "InParsGenerator", "INSTRUCT_PROMPTS", "INPARS_PROMPT", "DEFAULT_INSTRUCT_PROMPT"]

# name -> (user template with {doc}, system message or None, pre-filled start of the reply)
INSTRUCT_PROMPTS: dict[str, tuple[str, str | None, str]] = {
    "question": (f"{QUESTION_INSTRUCTION}\n\nText: {{doc}}", None, ""),
    # the same prompt the query-likelihood reranker (llm_query_likelihood) scores queries under
    "question-prefilled": (f"{QUESTION_INSTRUCTION}\n\nText: {{doc}}", None, QUESTION_PREFIX),
    "after": ("Text: {doc}\n\nWhat question does this text answer? Reply with one short question.", None,
              "Question:"),
    "query": ("Write a short search query (at most 10 words) that someone would type into a search engine to "
              "find the text below. Reply with the query only, do not copy sentences from the text.\n\n"
              "Text: {doc}", None, ""),
    "bare": ("Write a query for this text.\n\n{doc}", None, ""),
}

DEFAULT_INSTRUCT_PROMPT = "question-prefilled"

INPARS_PROMPT = (
    "Example 1:\n"
    "Document: The stomach secretes hydrochloric acid, which lowers the pH and activates pepsin, an enzyme "
    "that breaks proteins into smaller peptides.\n"
    "Relevant Query: what activates pepsin in the stomach\n\n"
    "Example 2:\n"
    "Document: Wind turbines convert the kinetic energy of moving air into electricity; their output rises "
    "with the cube of the wind speed, so turbines are placed on exposed ridges and offshore.\n"
    "Relevant Query: how does wind speed affect turbine power output\n\n"
    "Example 3:\n"
    "Document: In a meta-analysis of randomised trials, regular aerobic exercise lowered resting blood "
    "pressure by a few mmHg in adults with hypertension.\n"
    "Relevant Query: does exercise reduce blood pressure in hypertension\n\n"
    "Example 4:\n"
    "Document: {doc}\n"
    "Relevant Query:"
)


class _LLMGenerator(QueryGenerator):
    uses_llm = True
    variant = ""

    def __init__(self, backend: LLMBackend, *, max_doc_tokens: int = 200, max_new_tokens: int = 32,
                 temperature: float = 0.0, max_words: int = 32) -> None:
        if not isinstance(backend, LLMBackend):
            raise InputError(f"{self.name}: backend must be an LLMBackend (rankstack.llm.load_backend), "
                             f"got {type(backend).__name__}")
        if max_doc_tokens < 8 or max_new_tokens < 2:
            raise InputError(f"{self.name}: max_doc_tokens must be >= 8 and max_new_tokens >= 2")
        self.backend = backend
        self.max_doc_tokens, self.max_new_tokens = max_doc_tokens, max_new_tokens
        self.temperature, self.max_words = float(temperature), max_words

    @property
    def template(self) -> str:
        raise NotImplementedError

    @property
    def prompt_id(self) -> str:
        return f"{self.name}-{self.variant}-{short_hash(self.template)}" if self.variant else \
            f"{self.name}-{short_hash(self.template)}"

    def describe(self) -> dict[str, Any]:
        return {"generator": self.name, "prompt": self.variant or "default", "template_sha256": short_hash(self.template),
                "model": self.backend.name, "max_doc_tokens": self.max_doc_tokens,
                "max_new_tokens": self.max_new_tokens, "temperature": self.temperature}

    def _prompt(self, passage: str) -> Any:
        raise NotImplementedError

    def _stop(self) -> tuple[str, ...]:
        return ()

    def generate(self, docs: Sequence[Document], seed: int = 0) -> list[Generated]:
        if not docs:
            return []
        passages = self.backend.truncate([d.contents for d in docs], self.max_doc_tokens)
        gens = self.backend.generate([self._prompt(p) for p in passages], max_new_tokens=self.max_new_tokens,
                                     temperature=self.temperature, seed=seed, stop=self._stop())
        out = []
        for d, passage, g in zip(docs, passages, gens):
            query = clean_query(g.text)
            reason = rejection_reason(query, d.contents, max_words=self.max_words)
            extra = {"raw": g.text[:300], "generated_tokens": g.generated_tokens}
            if reason is not None:
                out.append(Generated(d.docid, None, extra=extra, rejected=reason))
                continue
            lps = g.token_logprobs
            if lps:
                # the query's own tokens: a base model runs on past the stop string (cut afterwards)
                n = min(len(lps), max(1, self.backend.count_tokens([" " + query])[0]))
                score: float | None = float(np.mean(lps[:n]))
            else:
                score = None
            out.append(Generated(d.docid, query, score=score, extra=extra))
        return out


class InstructGenerator(_LLMGenerator):
    """Zero-shot chat prompt (``prompt`` names a variant of ``INSTRUCT_PROMPTS`` or is a template with
    ``{doc}``) for an instruction-tuned model such as SmolLM2-135M-Instruct."""

    name = "llm-instruct"

    def __init__(self, backend: LLMBackend, prompt: str = DEFAULT_INSTRUCT_PROMPT, **kwargs: Any) -> None:
        super().__init__(backend, **kwargs)
        if prompt in INSTRUCT_PROMPTS:
            self.variant = prompt
            self._template, self._system, self._prefix = INSTRUCT_PROMPTS[prompt]
        elif "{doc}" in prompt:
            self.variant, self._template, self._system, self._prefix = "custom", prompt, None, ""
        else:
            raise InputError(f"llm-instruct: prompt {prompt!r} is neither a variant "
                             f"({', '.join(INSTRUCT_PROMPTS)}) nor a template containing {{doc}}",
                             fix="pass --prompt question, or a template such as 'Write a query for: {doc}'")

    @property
    def template(self) -> str:
        return self._template + (f"\x1esystem:{self._system}" if self._system else "") + \
            (f"\x1eprefix:{self._prefix}" if self._prefix else "")

    def _prompt(self, passage: str) -> Chat:
        return Chat.user(self._template.replace("{doc}", passage), system=self._system, prefix=self._prefix)


class InParsGenerator(_LLMGenerator):
    """InPars few-shot completion prompt for a base model; the query ends at the first newline."""

    name = "inpars"

    def __init__(self, backend: LLMBackend, prompt: str = "inpars-v1", max_new_tokens: int = 24,
                 **kwargs: Any) -> None:
        super().__init__(backend, max_new_tokens=max_new_tokens, **kwargs)
        if prompt == "inpars-v1":
            self.variant, self._template = "", INPARS_PROMPT
        elif "{doc}" in prompt:
            self.variant, self._template = "custom", prompt
        else:
            raise InputError(f"inpars: prompt {prompt!r} is neither 'inpars-v1' nor a template containing {{doc}}")

    @property
    def template(self) -> str:
        return self._template

    def _prompt(self, passage: str) -> str:
        return self._template.replace("{doc}", " ".join(passage.split()))

    def _stop(self) -> tuple[str, ...]:
        return ("\n",)
