"""Prompts of the LLM ranking strategies, and the identifiers they use.

Each follows its paper's prompt (adapted to one user turn of a chat template):
pointwise yes/no relevance generation as in "Holistic Evaluation of Language Models" (Liang et al.,
2022); query likelihood after a question-writing instruction, as UPR ("Improving
Passage Retrieval with Zero-Shot Question Generation", Sachan et al., EMNLP 2022); PRP's "Passage A /
Passage B" prompt (Qin et al., 2023); RankGPT's listwise instruction with ``[1] > [2]`` output (Sun
et al., 2023); FIRST's letter identifiers (Reddy et al., 2024, single tokens where numbers split into
digits); ICR's "Here are some paragraphs" context with the query last (Chen et al., 2024).
"""

from __future__ import annotations

import string
from collections.abc import Sequence

from rankstack.errors import InputError
from rankstack.llm.base import Chat

__all__ = ["EMPTY_DOC", "identifiers", "pointwise_prompt", "QUESTION_INSTRUCTION", "QUESTION_PREFIX",
           "query_likelihood_prompt", "prp_prompt", "listwise_prompt", "icr_segments",
           "YES_NO", "PRP_CHOICES"]

EMPTY_DOC = "(empty document)"  # what an empty or blank document reads as in every prompt
YES_NO = ("Yes", "No")
PRP_CHOICES = (" A", " B")  # after the pre-filled "Passage": one token each in BPE vocabularies
LETTERS = string.ascii_uppercase


def identifiers(n: int, kind: str) -> list[str]:
    """``["1", ..., "n"]`` (RankGPT) or ``["A", ...]`` (FIRST: at most 26, one token each)."""
    if kind == "numbers":
        return [str(i + 1) for i in range(n)]
    if kind == "letters":
        if n > len(LETTERS):
            raise InputError(f"a window of {n} passages needs more than {len(LETTERS)} letter identifiers",
                             fix="use window <= 26 with letter identifiers")
        return list(LETTERS[:n])
    raise InputError(f"unknown identifiers {kind!r}", fix="choose 'numbers' or 'letters'")


def pointwise_prompt(query: str, doc: str) -> Chat:
    return Chat.user(f"Passage: {doc}\nQuery: {query}\n"
                     "Does the passage answer the query? Answer 'Yes' or 'No'.")


# UPR's "Please write a question based on this passage", worded as the instruct query generator's
# default prompt (rankstack.synth): the scorer asks how likely this passage was to produce the query.
QUESTION_INSTRUCTION = "Generate a question that a user might type into a search engine to find the following text."
QUESTION_PREFIX = "Question:"


def query_likelihood_prompt(doc: str) -> Chat:
    """The passage and the instruction; the query is scored as the continuation after ``Question:``."""
    return Chat.user(f"{QUESTION_INSTRUCTION}\n\nText: {doc}", prefix=QUESTION_PREFIX)


def prp_prompt(query: str, doc_a: str, doc_b: str) -> Chat:
    return Chat.user(f'Given a query "{query}", which of the following two passages is more relevant to the '
                     f'query?\n\nPassage A: "{doc_a}"\n\nPassage B: "{doc_b}"\n\n'
                     "Output Passage A or Passage B:", prefix="Passage")


LISTWISE_SYSTEM = ("You are RankGPT, an intelligent assistant that can rank passages based on their relevancy "
                   "to the query.")


def listwise_prompt(query: str, docs: Sequence[str], ids: Sequence[str]) -> Chat:
    """RankGPT's instruction; the answer is pre-filled with ``[`` so the first token is an identifier."""
    n = len(docs)
    body = "\n".join(f"[{i}] {d}" for i, d in zip(ids, docs))
    example = f"[{ids[0]}] > [{ids[1]}]" if n > 1 else f"[{ids[0]}]"
    user = (f"I will provide you with {n} passages, each indicated by an identifier in []. Rank the passages "
            f"based on their relevance to the query: {query}.\n\n{body}\n\nSearch Query: {query}.\n"
            f"Rank the {n} passages above based on their relevance to the search query. List them in "
            f"descending order using identifiers, the most relevant first. The output format should be "
            f"[] > [], e.g., {example}. Only give the ranking, do not explain.")
    return Chat((("system", LISTWISE_SYSTEM), ("user", user)), prefix="[")


ICR_HEAD = "Here are some paragraphs:\n\n"
ICR_TAIL = "\nPlease find information that is relevant to the following query in the paragraphs above.\n\nQuery: "
ICR_CALIBRATION = "N/A"  # the content-free query of ICR's calibration


def icr_segments(query: str, docs: Sequence[str]) -> list[str]:
    """ICR's context as segments: head, one per document, the instruction, then the query (last)."""
    return [ICR_HEAD] + [f"[{i + 1}] {d}\n" for i, d in enumerate(docs)] + [ICR_TAIL, " " + query]
