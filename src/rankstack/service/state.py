"""What the service serves: one pipeline over one collection, and the operations on it.

Why a plain class under the HTTP layer: the JSON API (:mod:`rankstack.service.app`) and the web
workbench (:mod:`rankstack.service.workbench`) call the same methods, and tests call them directly
to check that the API returns exactly what the library returns. Every method validates its input
and raises :class:`rankstack.service.errors.FieldError` (an ``InputError`` naming the request field).
The pipeline is built by :func:`rankstack.recipes.serve.load`; nothing here parses specs itself.

Methods are synchronous and thread-safe for concurrent readers (the stages only read their indexes
and models); the app runs them in its bounded worker pool.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rankstack.errors import InputError
from rankstack.service.errors import FieldError
from rankstack.service.snippets import query_terms, snippet

if TYPE_CHECKING:  # pragma: no cover
    from rankstack.data.beir import Collection
    from rankstack.recipes.serve import ServeConfig, Served

__all__ = ["Hit", "RerankHit", "Candidate", "ServiceState", "find_reranker", "MAX_QUERY_CHARS", "MAX_K",
           "MAX_CANDIDATES", "MAX_MEASURES", "DEFAULT_MEASURES"]

MAX_QUERY_CHARS = 1000     # longer "queries" are documents or abuse; BM25 and cross-encoders truncate anyway
MAX_K = 1000               # the deepest first stage we serve (BM25 and dense default to 1000)
MAX_CANDIDATES = 200       # pairs per rerank request: ~1-10 s of cross-encoder time on 2 cores
MAX_MEASURES = 20
DEFAULT_MEASURES = ("nDCG@10", "AP", "RR@10", "R@100")
SERVICE_QID = "q"


@dataclass(frozen=True)
class Hit:
    """One ranked document of a search."""

    rank: int
    docid: str
    score: float
    title: str
    text: str
    snippet: str   # HTML-escaped text excerpt with the query's terms wrapped in <mark>…</mark>


@dataclass(frozen=True)
class Candidate:
    """A document to rerank: an ``id`` in the collection or a ``text`` (one of them), and optionally
    its first-stage ``score`` (used when the reranker combines scores, e.g. ``combine='interpolate'``)."""

    id: str | None = None
    text: str | None = None
    score: float | None = None


@dataclass(frozen=True)
class RerankHit:
    rank: int
    index: int          # position of the candidate in the request
    id: str | None
    score: float


def find_reranker(stage: Any) -> Any:
    """The pipeline's last stage if it is a pair-scoring reranker (through ``% k`` and ``>>``), else None."""
    from rankstack.pipeline.stage import Cutoff, Then
    from rankstack.rerank.base import PairScorer

    while True:
        if isinstance(stage, Cutoff):
            stage = stage.inner
        elif isinstance(stage, Then):
            stage = stage.second
        else:
            break
    inner = getattr(stage, "stage", None)  # a named pipeline of an experiment file
    if not isinstance(stage, PairScorer) and callable(inner):
        return find_reranker(inner())
    return stage if isinstance(stage, PairScorer) else None


class ServiceState:
    """The served pipeline (``pipeline_spec``), its collection and the experiment folders to browse."""

    def __init__(self, stage: Any, pipeline_spec: str, collection: Collection | None = None,
                 experiments: Sequence[Path] = (), name: str = "pipeline", config: ServeConfig | None = None) -> None:
        self.stage = stage
        self.pipeline_spec = pipeline_spec
        self.pipeline_name = name
        self.collection = collection
        self.experiments: list[Path] = [Path(p) for p in experiments]
        self.config = config
        self._qrels: dict[str, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_served(cls, served: Served, config: ServeConfig | None = None) -> ServiceState:
        return cls(served.stage, served.spec, served.collection, served.experiments, served.name, config)

    @classmethod
    def from_config(cls, config: ServeConfig) -> ServiceState:
        """Build (and warm up) the pipeline the config names: :func:`rankstack.recipes.serve.load`."""
        from rankstack.recipes.serve import load

        return cls.from_served(load(config), config)

    # -- search ------------------------------------------------------------------------------------
    def check_query(self, query: Any, field: str = "query") -> str:
        if not isinstance(query, str):
            raise FieldError(field, f"must be a string, got {type(query).__name__}")
        if not query.strip():
            raise FieldError(field, "is empty", fix="type some words to search for")
        if not _utf8(query):
            raise FieldError(field, "holds characters that are not valid Unicode text (unpaired surrogates)")
        if len(query) > MAX_QUERY_CHARS:
            raise FieldError(field, f"is {len(query)} characters long; at most {MAX_QUERY_CHARS} are accepted",
                             fix="shorten the query")
        return query

    @staticmethod
    def check_k(k: Any, field: str = "k") -> int:
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise FieldError(field, f"must be an integer from 1 to {MAX_K}, got {k!r}")
        return k

    def run(self, query: str, k: int):
        """The pipeline's Run for one query, cut to ``k`` documents (what ``search`` shows)."""
        from rankstack.types import Queries

        query, k = self.check_query(query), self.check_k(k)
        return self.stage(Queries((SERVICE_QID,), (query,))).top_k(k)

    def search(self, query: str, k: int) -> list[Hit]:
        """The top ``k`` documents for ``query`` with titles, texts and highlighted snippets."""
        run = self.run(query, k)
        docs = self.collection.documents() if self.collection is not None else {}
        terms = query_terms(query)
        hits = []
        for rank, (docid, score) in enumerate(zip(run.docids.tolist(), run.scores.tolist()), start=1):
            doc = docs.get(docid)
            title, text = (doc.title, doc.text) if doc is not None else ("", "")
            hits.append(Hit(rank, docid, float(score), title, text, snippet(text, terms)))
        return hits

    def document(self, docid: str) -> tuple[str, str]:
        """``(title, text)`` of a document of the served collection."""
        if self.collection is None:
            raise FieldError("docid", "this service has no collection to read documents from", status=404)
        if not isinstance(docid, str):
            raise FieldError("docid", f"must be a string, got {type(docid).__name__}")
        doc = self.collection.documents().get(docid)
        if doc is None:
            raise FieldError("docid", f"unknown document id {docid[:100]!r} in collection {self.collection.name!r}",
                             status=404)
        return doc.title, doc.text

    # -- rerank ------------------------------------------------------------------------------------
    @property
    def reranker(self) -> Any:
        return find_reranker(self.stage)

    def rerank(self, query: str, candidates: Sequence[Candidate], k: int | None = None) -> tuple[list[RerankHit], bool]:
        """Score candidates with the pipeline's reranker; returns the ranking and whether scores were
        combined with the candidates' first-stage scores (only when every candidate has one and the
        reranker combines). Ties are broken as in a Run (id descending, then request order)."""
        import numpy as np

        from rankstack.rerank.base import combine_scores

        scorer = self.reranker
        if scorer is None:
            raise FieldError("pipeline", f"the served pipeline {self.pipeline_spec!r} does not end with a "
                                         "reranker", fix="serve e.g. \"bm25 % 20 >> reranker(model='DIR')\"",
                             status=400)
        query = self.check_query(query)
        if not candidates:
            raise FieldError("candidates", "is empty", fix="give at least one {\"id\": ...} or {\"text\": ...}")
        if len(candidates) > MAX_CANDIDATES:
            raise FieldError("candidates", f"holds {len(candidates)} candidates; at most {MAX_CANDIDATES}",
                             fix="send fewer candidates per request")
        k = len(candidates) if k is None else self.check_k(k)
        docs = self.collection.documents() if self.collection is not None else {}
        texts, ids, seen = [], [], set()
        for i, c in enumerate(candidates):
            where = f"candidates[{i}]"
            if (c.id is None) == (c.text is None):
                raise FieldError(where, "needs exactly one of 'id' or 'text'")
            if c.id is not None:
                doc = docs.get(c.id)
                if doc is None:
                    raise FieldError(f"{where}.id", f"unknown document id {c.id[:100]!r}", status=404)
                if c.id in seen:
                    raise FieldError(f"{where}.id", f"document {c.id[:100]!r} is given twice")
                seen.add(c.id)
                texts.append(doc.contents)
            else:
                if not c.text.strip() or not _utf8(c.text):
                    raise FieldError(f"{where}.text", "is empty or not valid Unicode text")
                texts.append(c.text)
            ids.append(c.id)
        from rankstack.rerank.base import require_bare_pairs

        require_bare_pairs(scorer, "the service's rerank endpoint")
        scores = scorer.score([query] * len(texts), texts)
        combined = scorer.combine is not None and all(c.score is not None for c in candidates)
        if combined:
            keys = np.array([c.id if c.id is not None else f"#{i}" for i, c in enumerate(candidates)])
            first = np.array([float(c.score) for c in candidates])
            scores = combine_scores(scores, first, keys, scorer.combine, scorer.alpha, scorer.norm, scorer.rrf_k)
        order = sorted(range(len(texts)), key=lambda i: (-scores[i], _desc(ids[i]), i))[:k]
        return [RerankHit(r, i, ids[i], float(scores[i])) for r, i in enumerate(order, start=1)], combined

    # -- evaluate ----------------------------------------------------------------------------------
    def qrels(self, split: str):
        if self.collection is None:
            raise FieldError("split", "this service has no collection (and no qrels)", status=404)
        with self._lock:
            if split not in self._qrels:
                try:
                    self._qrels[split] = self.collection.qrels(split)
                except InputError as exc:
                    raise FieldError("split", exc.problem, fix=exc.fix, status=404) from None
            return self._qrels[split]

    def evaluate(self, run_text: str, measures: Sequence[str] | None = None, split: str = "test") -> dict[str, Any]:
        """Measures of a TREC run (6-column text) against the collection's qrels of ``split``."""
        from rankstack.evaluate import evaluate
        from rankstack.evaluate.measures import parse_measures

        measures = list(measures or DEFAULT_MEASURES)
        if len(measures) > MAX_MEASURES:
            raise FieldError("measures", f"holds {len(measures)} measures; at most {MAX_MEASURES}")
        try:
            parse_measures(measures)
        except InputError as exc:
            raise FieldError("measures", exc.problem, fix=exc.fix) from None
        if not isinstance(split, str) or not split:
            raise FieldError("split", "must be a split name such as 'test'")
        qrels = self.qrels(split)
        run = parse_run_text(run_text)
        try:
            result = evaluate(run, qrels, measures)
        except InputError as exc:
            raise FieldError("run", exc.problem, fix=exc.fix) from None
        return {"split": split, "queries": len(result.queries), "mean": dict(result.mean),
                "per_query": {m: dict(v) for m, v in result.per_query.items()}}


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _desc(docid: str | None) -> tuple:
    """Sort key giving docid *descending* (the canonical tie-break) inside an ascending sort."""
    if docid is None:
        return (1,)
    return (0, tuple(-ord(c) for c in docid) + (1,))


def parse_run_text(text: Any):
    """A Run from TREC run text, with every check of :func:`rankstack.data.trec.read_run`."""
    from rankstack.data.trec import read_run

    if not isinstance(text, str):
        raise FieldError("run", f"must be TREC run text, got {type(text).__name__}")
    if not text.strip():
        raise FieldError("run", "is empty", fix="send lines 'qid Q0 docid rank score tag'")
    fd, name = tempfile.mkstemp(prefix="rankstack-run-", suffix=".trec")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        return read_run(name, name="run")
    except InputError as exc:
        where = f"line {exc.line}: " if exc.line is not None else ""
        raise FieldError("run", where + exc.problem, fix=exc.fix) from None
    except UnicodeEncodeError:
        raise FieldError("run", "holds characters that are not valid UTF-8 (unpaired surrogates)") from None
    finally:
        os.unlink(name)
