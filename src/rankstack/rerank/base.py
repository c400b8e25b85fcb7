"""PairScorer: the one base class every (query, document) reranker backend plugs into.

Why a base class: batching, mapping scores back to the run, canonical ordering with trec_eval
tie-breaks, the rerank depth, and combining with the first-stage score are the same for a
cross-encoder, an LLM or a feature model; a backend only implements
``score_pairs(query_texts, doc_texts) -> np.ndarray``.

* Length-sorted batching: pairs are sorted by (estimated) length before they are cut into batches,
  so a batch pads to a similar length and little compute is spent on padding; scores are mapped back
  to the original order, so the result does not depend on the batching.
* ``depth``: only the top ``depth`` documents of each query are rescored; the rest stay below them
  in their first-stage order (so ``bm25 >> reranker(depth=100)`` keeps BM25's tail for R@1000).
* ``combine``: ``"interpolate"`` mixes the normalised reranker score with the normalised first-stage
  score, ``alpha * rerank + (1 - alpha) * first`` (min-max or z-score per query), as in the classic
  score interpolation of BERT rerankers with BM25 (e.g. "Multi-Stage Document Ranking with BERT",
  Nogueira et al., 2019, and Lin et al., "Pretrained Transformers for Text Ranking", 2021);
  ``"rrf"`` is reciprocal rank fusion of the two rankings ("Reciprocal Rank Fusion outperforms
  Condorcet and individual Rank Learning Methods", Cormack et al., SIGIR 2009).
* ``first_score_in_input``: the first-stage score goes *into* the model's input, as text between
  the query and the document ("Injecting the BM25 Score as Text Improves BERT-Based Re-rankers",
  Askari et al., ECIR 2023): the query text becomes ``"<query> <sep> <n>"`` with ``n`` the score
  min-max normalised over the query's top ``first_score_depth`` candidates (the depth the training
  groups were normalised over, kept in the model's manifest; a candidate below that top gets 0), as
  an integer 0-100 (one vocabulary token each in BERT's WordPiece). The paper compares several score
  representations; we use this per-query one because it needs no collection-wide statistics. A
  model must be trained with the same input (``rankstack train reranker --first-score-in-input``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rankstack import normalize
from rankstack.errors import InputError
from rankstack.pipeline.stage import Stage, StageInput, queries_of
from rankstack.types import Run

__all__ = ["PairScorer", "PreparedPairs", "DocumentSource", "normalise", "combine_scores", "COMBINE_METHODS", "NORMS",
           "query_with_first_score", "normalised_first_scores", "FIRST_SCORE_LEVELS", "score_separator",
           "require_bare_pairs"]

log = logging.getLogger(__name__)

COMBINE_METHODS = (None, "interpolate", "rrf")
NORMS = ("minmax", "zscore")

FIRST_SCORE_LEVELS = 100  # a normalised first-stage score in [0, 1] is written as an integer 0..100


def query_with_first_score(query: str, score: float, separator: str) -> str:
    """``"<query> <separator> <n>"``: the query text with a [0, 1] first-stage score as an integer
    0-100 (Askari et al., ECIR 2023). Training and reranking both build their inputs with this."""
    level = int(round(FIRST_SCORE_LEVELS * min(max(float(score), 0.0), 1.0)))
    return f"{query} {separator} {level}"


def normalised_first_scores(scores: Sequence[float] | np.ndarray, n: int, depth: int | None) -> np.ndarray:
    """The first ``n`` of one query's ranked first-stage scores, min-max normalised over its top
    ``depth`` (None: all of them) and clipped to [0, 1]: what ``query_with_first_score`` writes."""
    top = np.asarray(scores[:depth] if depth else scores, dtype=np.float64)
    lo, hi = (float(top.min()), float(top.max())) if len(top) else (0.0, 0.0)
    head = np.asarray(scores[:n], dtype=np.float64)
    return np.clip((head - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros(len(head))


def score_separator(tokenizer: Any) -> str:
    """What separates the query from its first-stage score: the tokenizer's separator token, else "|"."""
    return getattr(tokenizer, "sep_token", None) or "|"


def require_bare_pairs(scorer: Any, use: str) -> None:
    """Refuse a model trained with the first-stage score in its input where ``use`` scores bare
    (query, document) pairs (teachers, CUR, attacks, the service): it would get inputs it never saw
    in training and give silently different scores."""
    if getattr(scorer, "first_score_in_input", False):
        where = getattr(scorer, "model_path", None) or "this cross-encoder"
        raise InputError(f"{use} scores bare (query, document) pairs, but the model at {where} was trained with the "
                         "first-stage score in its input", fix="use a model trained without --first-score-in-input "
                                                               "there; rerank a first-stage run with this one")


# Where document texts come from: a Collection (anything with ``doc_texts(docids)``), a mapping
# docid -> text, or a function docids -> texts.
DocumentSource = Any


def _doc_lookup(documents: DocumentSource) -> Callable[[Sequence[str]], list[str]] | None:
    if documents is None:
        return None
    if hasattr(documents, "doc_texts"):
        return documents.doc_texts
    if isinstance(documents, Mapping):
        def lookup(docids: Sequence[str]) -> list[str]:
            out = []
            for d in docids:
                try:
                    text = documents[d]
                except KeyError:
                    raise InputError(f"document id {d!r} has no text",
                                     fix="the run and the document mapping do not match") from None
                out.append(text if isinstance(text, str) else getattr(text, "contents", str(text)))
            return out

        return lookup
    if callable(documents):
        return documents
    raise InputError(f"documents must be a Collection, a mapping docid -> text or a function, got "
                     f"{type(documents).__name__}")


def normalise(scores: np.ndarray, method: str = "minmax") -> np.ndarray:
    """One query's scores normalised by :mod:`rankstack.normalize` (a constant list maps to zeros)."""
    if method not in NORMS:
        raise InputError(f"unknown normalisation {method!r}", fix=f"choose one of {', '.join(NORMS)}")
    return normalize.normalise(np.asarray(scores, dtype=np.float64).reshape(-1), None, method)


def _ranks_desc(scores: np.ndarray, docids: np.ndarray) -> np.ndarray:
    """1-based ranks, score descending, ties by docid descending (the canonical order)."""
    _, d_code = np.unique(docids, return_inverse=True)
    order = np.lexsort((-d_code, -scores))
    ranks = np.empty(len(scores), dtype=np.int64)
    ranks[order] = np.arange(1, len(scores) + 1)
    return ranks


def combine_scores(rerank: np.ndarray, first: np.ndarray, docids: np.ndarray, method: str | None,
                   alpha: float = 0.5, norm: str = "minmax", rrf_k: int = 60) -> np.ndarray:
    """Combine one query's reranker scores with its first-stage scores (see the module docstring)."""
    rerank = np.asarray(rerank, dtype=np.float64)
    if method is None:
        return rerank
    if method == "interpolate":
        return alpha * normalise(rerank, norm) + (1.0 - alpha) * normalise(first, norm)
    if method == "rrf":
        return (alpha * 2.0 / (rrf_k + _ranks_desc(rerank, docids))
                + (1.0 - alpha) * 2.0 / (rrf_k + _ranks_desc(np.asarray(first, np.float64), docids)))
    raise InputError(f"unknown combine method {method!r}",
                     fix="choose None, 'interpolate' or 'rrf'")


@dataclass(frozen=True)
class PreparedPairs:
    """What :meth:`PairScorer.prepare` computed once for all batches of a ``score`` call.

    ``lengths`` orders the pairs for batching; ``data`` is the backend's own (e.g. every pair's token
    ids, so a cross-encoder tokenises each pair once instead of once to sort and again per batch).
    """

    lengths: np.ndarray
    data: Any = None


class PairScorer(Stage):
    """A reranking Stage over a backend that scores (query text, document text) pairs.

    Subclasses implement :meth:`score_pairs`; they may override :meth:`pair_lengths` with a better
    length estimate (e.g. token counts) for batching. ``documents`` supplies document texts.
    """

    name = "reranker"
    # Optional batch executor (duck-typed: ``score_batches(spec, queries, docs, batches)``, e.g. a Ray
    # executor from rankstack.engine) and the spec its workers rebuild this scorer from. Set both
    # with ``rankstack.engine.attach_pair_executor``; batches stay exactly those computed here.
    executor: Any = None
    executor_spec: Any = None

    def __init__(self, documents: DocumentSource = None, depth: int | None = 100, batch_size: int = 32,
                 combine: str | None = None, alpha: float = 0.5, norm: str = "zscore", rrf_k: int = 60,
                 sort_by_length: bool = True, progress: bool = False, first_score_in_input: bool = False,
                 first_score_depth: int | None = None) -> None:
        if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 1):
            raise InputError(f"reranker: depth must be a positive integer or None, got {depth!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"reranker: batch_size must be a positive integer, got {batch_size!r}")
        if combine not in COMBINE_METHODS:
            raise InputError(f"reranker: unknown combine {combine!r}",
                             fix="choose None, 'interpolate' or 'rrf'")
        if not isinstance(alpha, (int, float)) or not 0.0 <= float(alpha) <= 1.0:
            raise InputError(f"reranker: alpha must be a number in [0, 1], got {alpha!r}",
                             fix="alpha is the weight of the reranker score (1 = reranker only)")
        if norm not in NORMS:
            raise InputError(f"reranker: unknown norm {norm!r}", fix=f"choose one of {', '.join(NORMS)}")
        if isinstance(rrf_k, bool) or not isinstance(rrf_k, int) or rrf_k < 0:
            raise InputError(f"reranker: rrf_k must be a non-negative integer, got {rrf_k!r}")
        self.documents = documents
        self._lookup = _doc_lookup(documents)
        self.depth = depth
        self.batch_size = batch_size
        self.combine = combine
        self.alpha = float(alpha)
        self.norm = norm
        self.rrf_k = rrf_k
        self.sort_by_length = sort_by_length
        self.progress = progress
        self.first_score_in_input = bool(first_score_in_input)
        self.first_score_depth = first_score_depth
        self.last_stats: dict[str, Any] = {}

    # Written between the query and its first-stage score (first_score_in_input); a tokenizer-based
    # backend sets its tokenizer's separator token.
    score_separator: str = "|"

    # backend API ----------------------------------------------------------------------------
    def score_pairs(self, query_texts: Sequence[str], doc_texts: Sequence[str]) -> np.ndarray:
        """Scores of aligned (query, document) pairs, higher = more relevant. Backends implement this."""
        raise NotImplementedError

    def pair_lengths(self, query_texts: Sequence[str], doc_texts: Sequence[str]) -> np.ndarray:
        """A length estimate per pair for batching; characters by default."""
        return np.fromiter((len(q) + len(d) for q, d in zip(query_texts, doc_texts)), dtype=np.int64,
                           count=len(query_texts))

    def prepare(self, query_texts: Sequence[str], doc_texts: Sequence[str]) -> PreparedPairs | None:
        """Work that every batch of one :meth:`score` call shares; None (the default) = nothing."""
        return None

    def score_batch(self, query_texts: Sequence[str], doc_texts: Sequence[str], idx: np.ndarray,
                    prepared: PreparedPairs | None) -> np.ndarray:
        """Scores of the pairs at positions ``idx``; a backend with a :meth:`prepare` overrides this."""
        return self.score_pairs([query_texts[i] for i in idx], [doc_texts[i] for i in idx])

    # batching -------------------------------------------------------------------------------
    def score(self, query_texts: Sequence[str], doc_texts: Sequence[str]) -> np.ndarray:
        """Score many pairs in length-sorted batches; the result is in the input order."""
        return self.score_with_progress(query_texts, doc_texts, None)

    def score_with_progress(self, query_texts: Sequence[str], doc_texts: Sequence[str],
                            progress: bool | None) -> np.ndarray:
        """:meth:`score`, with ``progress`` overriding the scorer's own setting for this call (a caller
        with its own bar passes False). ``score`` keeps its two-argument form for code that wraps it."""
        query_texts, doc_texts = list(query_texts), list(doc_texts)
        if len(query_texts) != len(doc_texts):
            raise InputError(f"{len(query_texts)} query texts but {len(doc_texts)} document texts",
                             fix="pass one query text per document text")
        n = len(query_texts)
        out = np.empty(n, dtype=np.float64)
        if n == 0:
            return out
        remote = self.executor is not None and self.executor_spec is not None
        prepared = None if remote else self.prepare(query_texts, doc_texts)  # workers tokenise their own
        if self.sort_by_length:
            lengths = prepared.lengths if prepared is not None else self.pair_lengths(query_texts, doc_texts)
            order = np.argsort(-np.asarray(lengths), kind="stable")  # longest first: memory peaks early
        else:
            order = np.arange(n)
        if remote:
            start = time.perf_counter()
            batches = [order[s:s + self.batch_size] for s in range(0, n, self.batch_size)]
            out = np.asarray(self.executor.score_batches(self.executor_spec, query_texts, doc_texts, batches),
                             dtype=np.float64)
            took = time.perf_counter() - start
            self.last_stats = {"pairs": n, "seconds": took, "pairs_per_s": n / max(took, 1e-9),
                               "execution": getattr(self.executor, "name", "custom")}
            if not np.all(np.isfinite(out)):
                raise RuntimeError(f"{type(self).__name__} produced non-finite scores")
            return out
        bar = None
        if self.progress if progress is None else progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, desc=self.name, unit="pair")
        start = time.perf_counter()
        for s in range(0, n, self.batch_size):
            idx = order[s:s + self.batch_size]
            scores = np.asarray(self.score_batch(query_texts, doc_texts, idx, prepared), dtype=np.float64).reshape(-1)
            if len(scores) != len(idx):
                raise RuntimeError(f"{type(self).__name__}.score_pairs returned {len(scores)} scores "
                                   f"for {len(idx)} pairs")
            out[idx] = scores
            if bar is not None:
                bar.update(len(idx))
        if bar is not None:
            bar.close()
        took = time.perf_counter() - start
        self.last_stats = {"pairs": n, "seconds": took, "pairs_per_s": n / max(took, 1e-9)}
        if not np.all(np.isfinite(out)):
            raise RuntimeError(f"{type(self).__name__} produced non-finite scores")
        return out

    def _first_scores(self, scores: np.ndarray, n: int) -> np.ndarray:
        return normalised_first_scores(scores, n, self.first_score_depth)

    # the Stage ------------------------------------------------------------------------------
    def doc_texts(self, docids: Sequence[str]) -> list[str]:
        if self._lookup is None:
            raise InputError(f"{self.name} needs document texts but has no documents",
                             fix="pass documents=Collection(...) (or build it with a collection context)")
        return self._lookup(list(docids))

    def transform(self, inp: StageInput) -> Run:
        return self.rerank_run(inp)

    def rerank_run(self, inp: StageInput, progress: bool | None = None) -> Run:
        """The Stage's work; ``progress`` as in :meth:`score_with_progress` (a subclass that reranks query
        by query shows one bar over the queries instead of one per query)."""
        if not isinstance(inp, Run):
            raise InputError(f"{self.name} reranks a Run, got {type(inp).__name__}",
                             fix="put a first stage before it: 'bm25 % 100 >> reranker'")
        queries = queries_of(inp, self.name)
        groups = list(inp.groups())
        # rows to rescore: the top `depth` of every query
        heads = [(q, d[: self.depth] if self.depth else d, s[: self.depth] if self.depth else s)
                 for q, d, s in groups]
        if self.first_score_in_input:
            longest = max((len(d) for _, d, _ in groups), default=0)
            if self.first_score_depth and 0 < longest < self.first_score_depth:
                log.warning("%s: the model reads first-stage scores normalised over each query's top %d, but the "
                            "run holds at most %d per query, so its inputs differ from training; pass a run of "
                            "depth >= %d (e.g. 'bm25 %% %d >> reranker')", self.name, self.first_score_depth,
                            longest, self.first_score_depth, self.first_score_depth)
            pair_q = [query_with_first_score(queries[q], x, self.score_separator)
                      for (q, _, s_all), (_, d, _) in zip(groups, heads) for x in self._first_scores(s_all, len(d))]
        else:
            pair_q = [queries[q] for q, d, _ in heads for _ in range(len(d))]
        pair_d = self.doc_texts([str(x) for _, d, _ in heads for x in d])
        scores = (self.score(pair_q, pair_d) if progress is None
                  else self.score_with_progress(pair_q, pair_d, progress))
        qids, docids, new = [], [], []
        pos = 0
        for (q, d_all, s_all), (_, d, s) in zip(groups, heads):
            k = len(d)
            rr = combine_scores(scores[pos:pos + k], s, d, self.combine, self.alpha, self.norm, self.rrf_k)
            pos += k
            tail = len(d_all) - k
            qids.append(np.full(len(d_all), q, dtype=object))
            docids.append(d_all)
            if tail:
                # keep the tail below every rescored document, in its first-stage order
                floor = rr.min() if k else 0.0
                rr = np.concatenate([rr, floor - 1.0 - np.arange(tail, dtype=np.float64)])
            new.append(rr)
        if not qids:
            return inp.replace(name=f"{inp.name} >> {self.name}")
        return Run(np.concatenate(qids).astype(str), np.concatenate(docids), np.concatenate(new),
                   name=f"{inp.name} >> {self.name}", queries=queries)
