"""Query generators behind one interface, and the three that need no language model.

Every generator turns a batch of documents into one query per document (or a counted rejection) and
states its provenance: ``name``, ``prompt_id`` (a variant name plus a hash of the prompt template or
of the rule's parameters) and the seed. The no-LLM generators are the cheap baselines the issue asks
for and what a CPU-only user can run on a whole corpus in seconds:

- ``title``: the document's title as the query (the weak supervision of e.g. "Unsupervised Dense
  Information Retrieval with Contrastive Learning", Izacard et al. 2022, and title-body pairs of
  "Pre-training Tasks for Embedding-based Large-scale Retrieval", Chang et al. 2020).
- ``ict``: inverse cloze task (Lee et al. 2019, "Latent Retrieval for Weakly Supervised Open Domain
  Question Answering"): a sentence of the document is the query, the rest of the document is the
  positive; ``extra`` records the remaining text and the removed span, so training can use it.
- ``salient``: the document's top tf-idf terms (surface words, English stop words removed), a
  keyword query in the spirit of doc2query's term-expansion view (Nogueira et al. 2019).

The LLM generators (``llm-instruct``, ``inpars``) are in :mod:`rankstack.synth.llm_generators`;
:func:`build_generator` builds any of them by name.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rankstack.data.beir import Document
from rankstack.errors import InputError, require

__all__ = ["Generated", "QueryGenerator", "TitleGenerator", "ICTGenerator", "SalientGenerator", "GENERATORS",
           "build_generator", "doc_rng", "short_hash"]


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def doc_rng(seed: int, doc_id: str) -> np.random.Generator:
    """A generator of random numbers for one (seed, document): the same pair always draws the same."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(doc_id.encode("utf-8"))])


@dataclass(frozen=True)
class Generated:
    """The outcome for one document: a query (``text``) or a ``rejected`` reason."""

    doc_id: str
    text: str | None
    score: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    rejected: str | None = None


class QueryGenerator:
    """Base class: ``generate(docs, seed) -> [Generated]`` one per document, in order.

    ``name`` and ``prompt_id`` go into every record; :meth:`describe` into the file header.
    ``fit(documents)`` sees the whole corpus once before generation (for corpus statistics).
    """

    name: str = "generator"
    uses_llm: bool = False

    @property
    def prompt_id(self) -> str:
        return f"{self.name}-{short_hash(json.dumps(self.describe(), sort_keys=True, default=str))}"

    def describe(self) -> dict[str, Any]:
        return {"generator": self.name}

    def fit(self, documents: Iterable[Document]) -> QueryGenerator:
        return self

    def generate(self, docs: Sequence[Document], seed: int = 0) -> list[Generated]:
        raise NotImplementedError


class TitleGenerator(QueryGenerator):
    """The title as the query; documents without a title are rejected (``no title``)."""

    name = "title"

    def generate(self, docs: Sequence[Document], seed: int = 0) -> list[Generated]:
        out = []
        for d in docs:
            title = " ".join(d.title.split()).rstrip(" .")
            out.append(Generated(d.docid, title) if title else Generated(d.docid, None, rejected="no title"))
        return out


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence: split after ., ! or ? followed by white space and a capital or
    digit (lower-case corpora such as cranfield use `` . `` between sentences, also a boundary)."""
    spans, start = [], 0
    for m in re.finditer(r"[.!?](?=\s+\S)", text):
        end = m.end()
        nxt = text[end:].lstrip()[:1]
        tokenish = text[max(0, m.start() - 1):m.start()] == " "  # " . " in tokenised text
        if nxt and (nxt.isupper() or nxt.isdigit() or nxt in "(\"'" or tokenish):
            if text[start:end].strip():
                spans.append((start, end))
            start = end
    if text[start:].strip():
        spans.append((start, len(text)))
    out = []
    for a, b in spans:  # trim white space inside the spans
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        out.append((a, b))
    return out


class ICTGenerator(QueryGenerator):
    """Inverse cloze task: one sentence (drawn with the seed) is the query, the rest the document.

    Sentences of fewer than ``min_words`` words are not drawn; a document with fewer than two usable
    sentences is rejected (``too few sentences``). ``extra`` = ``{"doc_text": rest, "span": [a, b]}``
    (character offsets of the removed sentence in the document's text).
    """

    name = "ict"

    def __init__(self, min_words: int = 5, max_words: int = 40) -> None:
        self.min_words, self.max_words = min_words, max_words

    def describe(self) -> dict[str, Any]:
        return {"generator": self.name, "min_words": self.min_words, "max_words": self.max_words}

    def generate(self, docs: Sequence[Document], seed: int = 0) -> list[Generated]:
        out = []
        for d in docs:
            spans = sentence_spans(d.text)
            usable = [(a, b) for a, b in spans if self.min_words <= len(d.text[a:b].split()) <= self.max_words]
            if len(spans) < 2 or not usable:
                out.append(Generated(d.docid, None, rejected="too few sentences"))
                continue
            a, b = usable[int(doc_rng(seed, d.docid).integers(len(usable)))]
            rest = (d.text[:a].rstrip() + " " + d.text[b:].lstrip()).strip()
            out.append(Generated(d.docid, " ".join(d.text[a:b].split()), extra={"doc_text": rest, "span": [a, b]}))
        return out


class SalientGenerator(QueryGenerator):
    """The ``n_terms`` highest tf-idf words of the document (title + text), highest first.

    tf-idf by scikit-learn's ``TfidfVectorizer`` fitted on the corpus (``fit`` must run first):
    surface words, English stop words removed, so the query reads as keywords rather than stems.
    """

    name = "salient"

    def __init__(self, n_terms: int = 4) -> None:
        if n_terms < 1:
            raise InputError(f"salient: n_terms must be >= 1, got {n_terms!r}")
        self.n_terms = n_terms
        self._vectorizer: Any = None

    def describe(self) -> dict[str, Any]:
        return {"generator": self.name, "n_terms": self.n_terms, "weights": "tfidf(sublinear_tf, english stopwords)"}

    def fit(self, documents: Iterable[Document]) -> SalientGenerator:
        text = require("sklearn.feature_extraction.text", "dense", "salient-term queries")
        self._vectorizer = text.TfidfVectorizer(stop_words="english", sublinear_tf=True, min_df=1,
                                                token_pattern=r"(?u)\b[^\W\d_][\w-]*[^\W_]\b")
        try:
            self._vectorizer.fit(d.contents for d in documents)
        except ValueError as exc:  # an empty vocabulary
            raise InputError(f"salient: the corpus has no usable words ({exc})",
                             fix="check the corpus' title/text fields") from None
        self._vocab = np.asarray(self._vectorizer.get_feature_names_out())
        return self

    def generate(self, docs: Sequence[Document], seed: int = 0) -> list[Generated]:
        if self._vectorizer is None:
            raise InputError("salient: call fit(corpus) before generate()")
        matrix = self._vectorizer.transform([d.contents for d in docs]).tocsr()
        out = []
        for i, d in enumerate(docs):
            row = matrix.getrow(i)
            if row.nnz < 2:
                out.append(Generated(d.docid, None, rejected="too few terms"))
                continue
            order = np.lexsort((self._vocab[row.indices], -row.data))[: self.n_terms]
            terms = self._vocab[row.indices[order]]
            out.append(Generated(d.docid, " ".join(terms), extra={"weights": [round(float(w), 4)
                                                                            for w in row.data[order]]}))
        return out


GENERATORS = ("title", "ict", "salient", "llm-instruct", "inpars")


def build_generator(name: str, **options: Any) -> QueryGenerator:
    """A generator by name (see ``GENERATORS``); LLM ones take ``backend`` (an LLMBackend) and options."""
    if name == "title":
        return TitleGenerator()
    if name == "ict":
        return ICTGenerator(**options)
    if name == "salient":
        return SalientGenerator(**options)
    if name in ("llm-instruct", "inpars"):
        from rankstack.synth.llm_generators import InParsGenerator, InstructGenerator

        return (InstructGenerator if name == "llm-instruct" else InParsGenerator)(**options)
    from rankstack.errors import did_you_mean

    raise InputError(f"unknown query generator {name!r}{did_you_mean(name, GENERATORS)}",
                     fix=f"use one of {', '.join(GENERATORS)}")
