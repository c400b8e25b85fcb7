"""Pseudo-relevance feedback for BM25: RM3 and Bo1 query expansion (``bm25 >> rm3 >> bm25``).

Why: expanding a query with terms of its top-ranked documents is the oldest label-free gain in IR and
the first thing a Pyserini or PyTerrier user reaches for. An expansion stage takes a first-stage Run,
reads its top ``fb_docs`` documents per query and returns that Run unchanged but carrying
:class:`~rankstack.types.WeightedQueries`; a BM25 stage that receives those scores
``sum_t w_t * BM25(t, d)`` over its *whole* index (a fresh retrieval, not a rerank of the input) and
hands plain Queries on, so rerankers downstream read the user's original text.

Terms are counted with the BM25 index's own analyzer (stopwords, stemmer, token pattern, fields), so
expansion terms are index terms; a BM25 stage with another analyzer refuses the weighted queries.

**RM3** (Lavrenko & Croft, "Relevance-Based Language Models", SIGIR 2001; RM3 = RM1 interpolated with
the query, Abdul-Jaleel et al., "UMass at TREC 2004"), as Anserini/Pyserini compute it:

- each feedback document's term vector keeps terms of 2-20 alphanumeric characters whose document
  frequency is at most ``max_df`` of the collection (Anserini: 0.1), pruned to its ``fb_terms``
  most frequent terms; ``P(t|D) = tf / sum tf`` over that pruned vector;
- ``RM1(t) = sum_D p(D) P(t|D)`` with ``p(D)`` the document's retrieval score normalised to sum 1
  over the feedback set (a softmax when some score is <= 0, i.e. scores read as log-likelihoods);
  this equals Anserini's raw-score weighting after the final normalisation;
- keep the ``fb_terms`` best terms, normalise to sum 1; ``w(t) = orig_weight * q(t) +
  (1 - orig_weight) * RM1(t)`` with ``q(t) = qtf / |q|``. Original terms are never dropped unless
  ``orig_weight=0``. Ties are broken by term (string order), so results are deterministic.

**Bo1** (Amati, "Probabilistic Models for Information Retrieval based on Divergence from Randomness",
PhD thesis 2003; Bose-Einstein 1), as Terrier/PyTerrier: the feedback documents form one bag;
``w(t) = tf_x log2((1 + P_n) / P_n) + log2(1 + P_n)`` with ``tf_x`` the term's frequency in the bag,
``P_n = F / N`` (collection frequency over number of documents); a term must occur in ``min_docs``
feedback documents (Terrier's ``expansion.mindocuments`` = 2, capped at the feedback size). The
``fb_terms`` best terms get ``w(t) / max w`` added to the original weights ``qtf / max qtf``
(Terrier's combination for parameter-free models; Terrier's normaliser is a bound close to max w).

Defaults are Pyserini's (RM3: fb_docs=10, fb_terms=10, orig_weight=0.5) and PyTerrier's (Bo1:
fb_docs=3, fb_terms=10).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from rankstack.data.beir import Collection, Document
from rankstack.errors import InputError
from rankstack.pipeline.stage import Stage, StageInput
from rankstack.registry import Context, register
from rankstack.retrieve.bm25 import FIELDS, LUCENE_PORTER, TOKEN_PATTERN, BM25Retriever
from rankstack.types import Queries, Run, WeightedQueries

__all__ = ["TermCounts", "QueryExpansion", "RM3", "Bo1", "rm3_weights", "bo1_weights"]

Weights = dict[str, float]


class TermCounts:
    """Document-term counts of a corpus under one analyzer (CSR rows), with df, cf and N.

    Why not the BM25 index: bm25s keeps only precomputed BM25 scores, not term frequencies, and RM3
    needs ``tf``, Bo1 the collection frequency ``F``.
    """

    def __init__(self, docids: Sequence[str], tokens: Sequence[Sequence[str]], analyzer: dict[str, Any]) -> None:
        self.analyzer = dict(analyzer)
        self.docids = np.asarray(list(docids)).astype(str)
        lengths = np.array([len(t) for t in tokens], dtype=np.int64)
        flat = np.array([tok for t in tokens for tok in t] or [""])[:lengths.sum()]
        self.vocab, inverse = np.unique(flat, return_inverse=True)
        n_terms = max(len(self.vocab), 1)
        pair = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths) * n_terms + inverse
        pairs, counts = np.unique(pair, return_counts=True)
        doc, self._terms, self._tf = pairs // n_terms, pairs % n_terms, counts
        self._indptr = np.searchsorted(doc, np.arange(len(lengths) + 1))
        self.df = np.bincount(self._terms, minlength=len(self.vocab))
        self.cf = np.bincount(self._terms, weights=counts, minlength=len(self.vocab))
        self.num_docs = len(lengths)
        self._row = {d: i for i, d in enumerate(self.docids.tolist())}

    @classmethod
    def build(cls, documents: Iterable[Document], analyzer: BM25Retriever) -> TermCounts:
        docs = list(documents)
        tokens = analyzer.tokenize([analyzer.document_text(d) for d in docs])
        return cls([d.docid for d in docs], tokens, analyzer.analyzer)

    def tf(self, docid: str) -> tuple[np.ndarray, np.ndarray]:
        """(term ids, counts) of one document; unknown documents are an InputError."""
        row = self._row.get(docid)
        if row is None:
            raise InputError(f"prf: feedback document {docid!r} is not in the collection",
                             fix="expand runs of the same collection the stage reads")
        s, e = self._indptr[row], self._indptr[row + 1]
        return self._terms[s:e], self._tf[s:e]


_CACHE: dict[str, TermCounts] = {}
_CACHE_LOCK = threading.Lock()


def term_counts(collection: Collection, analyzer: BM25Retriever) -> TermCounts:
    """Counts of ``collection`` under ``analyzer``, built once per corpus content and analyzer."""
    from rankstack.storage import fingerprint

    key = hashlib.sha256(json.dumps([fingerprint(collection.corpus_path), analyzer.analyzer],
                                    sort_keys=True).encode()).hexdigest()
    with _CACHE_LOCK:
        if key not in _CACHE:
            if len(_CACHE) >= 4:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = TermCounts.build(collection.corpus(), analyzer)
        return _CACHE[key]


def _top(weights: Weights, n: int) -> Weights:
    """The ``n`` largest entries, ties by term (deterministic)."""
    return dict(sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))[:n])


def _eligible(term: str) -> bool:
    return 2 <= len(term) <= 20 and term.isalnum()


def _doc_weights(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) and (scores <= 0).any():
        e = np.exp(scores - scores.max())
        return e / e.sum()
    return scores / scores.sum() if len(scores) else scores


def _query_tf(tokens: Sequence[str]) -> Weights:
    out: Weights = {}
    for t in tokens:
        out[t] = out.get(t, 0.0) + 1.0
    return out


def rm3_weights(query_tokens: Sequence[str], feedback: Sequence[str], scores: np.ndarray, counts: TermCounts,
                fb_terms: int = 10, orig_weight: float = 0.5, max_df: float = 0.1) -> Weights:
    """RM3 term weights of one query (see the module docstring); sums to 1 when anything is known."""
    p_doc = _doc_weights(scores)
    rm1: Weights = {}
    for docid, p in zip(feedback, p_doc):
        terms, tf = counts.tf(docid)
        vec = {str(counts.vocab[t]): float(c) for t, c in zip(terms, tf)
               if counts.df[t] <= max_df * counts.num_docs and _eligible(str(counts.vocab[t]))}
        vec = _top(vec, fb_terms)
        norm = sum(vec.values())
        if norm <= 0:
            continue
        for term, c in vec.items():
            rm1[term] = rm1.get(term, 0.0) + p * c / norm
    rm1 = _top(rm1, fb_terms)
    total = sum(rm1.values())
    q = _query_tf(query_tokens)
    qlen = sum(q.values())
    out: Weights = {}
    for term, c in q.items():
        out[term] = orig_weight * c / qlen
    for term, w in rm1.items():
        out[term] = out.get(term, 0.0) + (1 - orig_weight) * w / total
    return {t: w for t, w in out.items() if w > 0}


def bo1_weights(query_tokens: Sequence[str], feedback: Sequence[str], counts: TermCounts,
                fb_terms: int = 10, min_docs: int = 2) -> Weights:
    """Bo1-expanded term weights of one query (see the module docstring)."""
    bag: dict[int, float] = {}
    docs_with: dict[int, int] = {}
    for docid in feedback:
        terms, tf = counts.tf(docid)
        for t, c in zip(terms.tolist(), tf.tolist()):
            bag[t] = bag.get(t, 0.0) + c
            docs_with[t] = docs_with.get(t, 0) + 1
    need = min(min_docs, len(feedback))
    scored: Weights = {}
    for t, tfx in bag.items():
        term = str(counts.vocab[t])
        if docs_with[t] < need or not _eligible(term):
            continue
        pn = counts.cf[t] / counts.num_docs
        scored[term] = tfx * math.log2((1 + pn) / pn) + math.log2(1 + pn)
    expansion = _top(scored, fb_terms)
    q = _query_tf(query_tokens)
    top_q = max(q.values(), default=1.0)
    out: Weights = {t: c / top_q for t, c in q.items()}
    top_w = max(expansion.values(), default=0.0)
    for term, w in expansion.items():
        if top_w > 0:
            out[term] = out.get(term, 0.0) + w / top_w
    return {t: w for t, w in out.items() if w > 0}


def _positive_int(stage: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{stage}: {name} must be a positive integer, got {value!r}")


class QueryExpansion(Stage):
    """Base of RM3 and Bo1: Run in, the same Run out carrying WeightedQueries for the next BM25."""

    name = "expansion"

    def __init__(self, analyzer: BM25Retriever, collection: Collection | None = None,
                 counts: TermCounts | None = None, fb_docs: int = 10, fb_terms: int = 10) -> None:
        _positive_int(self.name, "fb_docs", fb_docs)
        _positive_int(self.name, "fb_terms", fb_terms)
        if counts is None and collection is None:
            raise InputError(f"{self.name} needs the collection's documents",
                             fix="pass --collection (or counts=TermCounts.build(docs, analyzer))")
        self.analyzer, self.collection, self._counts = analyzer, collection, counts
        self.fb_docs, self.fb_terms = fb_docs, fb_terms

    @property
    def counts(self) -> TermCounts:
        if self._counts is None:
            self._counts = term_counts(self.collection, self.analyzer)
        return self._counts

    def weights(self, query_tokens: list[str], feedback: Sequence[str], scores: np.ndarray) -> Weights:
        raise NotImplementedError  # pragma: no cover - abstract

    def transform(self, inp: StageInput) -> Run:
        if not isinstance(inp, Run):
            raise InputError(f"{self.name} expands queries from a first-stage run, but received Queries",
                             fix=f"put a retriever before it, e.g. 'bm25 >> {self.name} >> bm25'")
        if inp.queries is None:
            raise InputError(f"{self.name} needs query texts but received a Run without queries",
                             fix="attach them with run.with_queries(queries)")
        queries: Queries = inp.queries
        tokens = self.analyzer.tokenize(list(queries.texts))
        fb = {q: (d[:self.fb_docs].tolist(), s[:self.fb_docs]) for q, d, s in inp.groups()}
        pairs = []
        for qid, toks in zip(queries.qids, tokens):
            docs, scores = fb.get(qid, ([], np.array([])))
            w = self.weights(toks, docs, scores)
            pairs.append(tuple(sorted(w.items(), key=lambda kv: (-kv[1], kv[0]))))
        expanded = WeightedQueries(queries.qids, queries.texts, term_weights=tuple(pairs),
                                   analyzer=self.analyzer.analyzer)
        return inp.with_queries(expanded)


class RM3(QueryExpansion):
    """RM3 expansion (Lavrenko & Croft 2001; Abdul-Jaleel et al. 2004), Anserini's recipe."""

    name = "rm3"

    def __init__(self, analyzer: BM25Retriever, collection: Collection | None = None,
                 counts: TermCounts | None = None, fb_docs: int = 10, fb_terms: int = 10,
                 orig_weight: float = 0.5, max_df: float = 0.1) -> None:
        super().__init__(analyzer, collection, counts, fb_docs, fb_terms)
        for name, value in (("orig_weight", orig_weight), ("max_df", max_df)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise InputError(f"rm3: {name} must be a number in [0, 1], got {value!r}")
        self.orig_weight, self.max_df = float(orig_weight), float(max_df)

    def weights(self, query_tokens: list[str], feedback: Sequence[str], scores: np.ndarray) -> Weights:
        return rm3_weights(query_tokens, feedback, scores, self.counts, self.fb_terms, self.orig_weight,
                           self.max_df)


class Bo1(QueryExpansion):
    """Bo1 divergence-from-randomness expansion (Amati 2003), Terrier's recipe."""

    name = "bo1"

    def __init__(self, analyzer: BM25Retriever, collection: Collection | None = None,
                 counts: TermCounts | None = None, fb_docs: int = 3, fb_terms: int = 10,
                 min_docs: int = 2) -> None:
        super().__init__(analyzer, collection, counts, fb_docs, fb_terms)
        _positive_int("bo1", "min_docs", min_docs)
        self.min_docs = min_docs

    def weights(self, query_tokens: list[str], feedback: Sequence[str], scores: np.ndarray) -> Weights:
        return bo1_weights(query_tokens, feedback, self.counts, self.fb_terms, self.min_docs)


def _analyzer(name: str, stopwords: Any, stemmer: Any, fields: Any, token_pattern: Any,
              tokenizer: Any) -> BM25Retriever:
    try:
        analyzer = BM25Retriever(stopwords=stopwords, stemmer=stemmer, fields=fields, token_pattern=token_pattern,
                                 tokenizer=tokenizer)
        analyzer.tokenize(["check"])  # an unknown stemmer fails now, not at the first query
        return analyzer
    except InputError as exc:  # the analyzer's checks are bm25's; name the stage the user wrote
        raise InputError(exc.problem.replace("bm25:", f"{name}:", 1), fix=exc.fix) from None


def _collection(name: str, context: Context | None) -> Collection:
    if context is None or context.collection is None:
        raise InputError(f"{name} needs the collection whose documents it reads", fix="pass --collection")
    return context.collection


@register("rm3", kind="stage")
def build_rm3(context: Context | None = None, fb_docs: int = 10, fb_terms: int = 10, orig_weight: float = 0.5,
              max_df: float = 0.1, stopwords: str | list[str] | None = "lucene", stemmer: str | None = LUCENE_PORTER,
              fields: Sequence[str] = FIELDS, token_pattern: str = TOKEN_PATTERN, tokenizer: str = "lucene") -> RM3:
    """RM3 expansion over the context's collection; analyzer arguments must match the BM25 after it."""
    analyzer = _analyzer("rm3", stopwords, stemmer, fields, token_pattern, tokenizer)
    return RM3(analyzer, _collection("rm3", context), fb_docs=fb_docs, fb_terms=fb_terms,
               orig_weight=orig_weight, max_df=max_df)


@register("bo1", kind="stage")
def build_bo1(context: Context | None = None, fb_docs: int = 3, fb_terms: int = 10, min_docs: int = 2,
              stopwords: str | list[str] | None = "lucene", stemmer: str | None = LUCENE_PORTER,
              fields: Sequence[str] = FIELDS, token_pattern: str = TOKEN_PATTERN, tokenizer: str = "lucene") -> Bo1:
    """Bo1 expansion over the context's collection; analyzer arguments must match the BM25 after it."""
    analyzer = _analyzer("bo1", stopwords, stemmer, fields, token_pattern, tokenizer)
    return Bo1(analyzer, _collection("bo1", context), fb_docs=fb_docs, fb_terms=fb_terms, min_docs=min_docs)
