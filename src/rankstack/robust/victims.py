"""Victims of an attack: rank a query's candidates, and score *new* document texts on the same scale.

Why: a document attack changes one document's text, and the question is where the victim would now
rank it. Re-indexing the collection per attempt is out of the question, so each victim scores a
perturbed text against the query exactly as its model would (BM25 with the index's own statistics,
the dense encoder, the cross-encoder) and the rank is counted against the *other* candidates' clean
scores (the protocol of PRADA and Order-Disorder: the target competes with the victim's top list).
The hybrid victim fuses the target's component ranks by RRF against the clean fused scores of the
others (a one-document approximation: the others' fused scores would shift by at most one rank).
First-stage recall is not re-checked for the reranker victim: the target stays in its candidate list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rankstack.errors import InputError
from rankstack.types import Queries

__all__ = ["Victim", "BM25Victim", "DenseVictim", "HybridVictim", "RerankerVictim", "SmoothedVictim",
           "rank_of"]


def rank_of(score: float, other_scores: np.ndarray) -> int:
    """1-based rank of a document scoring ``score`` among ``other_scores`` (ties go against it)."""
    return 1 + int(np.sum(np.asarray(other_scores) >= score))


@dataclass
class Victim:
    """Base: ``lists(queries)`` -> {qid: (docids, scores)} best first; ``score_texts(query, texts)``."""

    name: str
    depth: int = 100
    partial: bool = False  # True: lists hold only the top of the ranking (rank gains are not defined)
    _lists: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    def lists(self, queries: Queries) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        todo = Queries.from_dict({q: t for q, t in queries if q not in self._lists}) if len(queries) else queries
        if len(todo):
            self._lists.update(self._rank(todo))
        return {q: self._lists[q] for q, _ in queries if q in self._lists}

    def _rank(self, queries: Queries) -> dict[str, tuple[np.ndarray, np.ndarray]]:  # pragma: no cover
        raise NotImplementedError

    def score_texts(self, query: str, texts: Sequence[str], qid: str | None = None,
                    docid: str | None = None) -> np.ndarray:  # pragma: no cover
        """Scores of new texts for ``query`` on the scale of :meth:`lists` (``qid``/``docid``: the target)."""
        raise NotImplementedError


def _run_lists(run: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {q: (d, s) for q, d, s in run.groups()}


class BM25Victim(Victim):
    """BM25 (bm25s, Lucene variant) scoring any text with the index's document frequencies and mean length."""

    def __init__(self, retriever: Any, collection: Any, depth: int = 100) -> None:
        super().__init__("bm25", depth)
        if retriever.params["method"] != "lucene":
            raise InputError(f"the BM25 victim scores new texts with Lucene's formula; the index uses "
                             f"{retriever.params['method']!r}", fix="use method='lucene'")
        self.retriever = retriever
        model = retriever._model
        indptr = np.asarray(model.scores["indptr"])
        self.df = np.diff(indptr)
        self.vocab = model.vocab_dict
        self.n_docs = int(retriever.num_docs)
        texts = [retriever.document_text(d) for d in collection.corpus()]
        lengths = [len(t) for t in retriever.tokenize(texts)]
        self.avgdl = float(np.mean(lengths)) if lengths else 1.0

    def _rank(self, queries: Queries):
        hits = self.retriever.search([t for _, t in queries], k=self.depth)
        return {q: (d, s) for (q, _), (d, s) in zip(queries, hits)}

    def score_texts(self, query: str, texts: Sequence[str], qid: str | None = None,
                    docid: str | None = None) -> np.ndarray:
        k1, b = self.retriever.params["k1"], self.retriever.params["b"]
        q_tokens = [t for t in self.retriever.tokenize([query])[0] if t in self.vocab]
        out = np.zeros(len(texts))
        for i, toks in enumerate(self.retriever.tokenize(list(texts))):
            dl = len(toks)
            counts: dict[str, int] = {}
            for t in toks:
                counts[t] = counts.get(t, 0) + 1
            s = 0.0
            for t in q_tokens:
                tf = counts.get(t, 0)
                if tf:
                    df = float(self.df[self.vocab[t]])
                    idf = np.log(1.0 + (self.n_docs - df + 0.5) / (df + 0.5))
                    s += idf * tf / (tf + k1 * (1.0 - b + b * dl / self.avgdl))
            out[i] = s
        return out


class DenseVictim(Victim):
    """Inner product of unit vectors from the retriever's own encoder."""

    def __init__(self, retriever: Any, depth: int = 100) -> None:
        super().__init__("dense", depth)
        self.retriever = retriever
        self._qvec: dict[str, np.ndarray] = {}

    def _rank(self, queries: Queries):
        return _run_lists((self.retriever % self.depth)(queries))

    def score_texts(self, query: str, texts: Sequence[str], qid: str | None = None,
                    docid: str | None = None) -> np.ndarray:
        if query not in self._qvec:
            self._qvec[query] = self.retriever.encoder.encode([query], progress=False)[0]
        vecs = self.retriever.encoder.encode(list(texts), progress=False)
        return vecs @ self._qvec[query]


class HybridVictim(Victim):
    """RRF of a BM25 and a dense victim (Cormack et al., "Reciprocal Rank Fusion...", SIGIR 2009)."""

    def __init__(self, bm25: BM25Victim, dense: DenseVictim, k: int = 60, depth: int = 100) -> None:
        super().__init__("hybrid", depth)
        self.parts, self.k = (bm25, dense), k
        self._part_lists: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}

    def _rank(self, queries: Queries):
        out = {}
        per = [p.lists(queries) for p in self.parts]
        for q, _ in queries:
            fused: dict[str, float] = {}
            for lists in per:
                docids, _ = lists.get(q, (np.array([]), np.array([])))
                for r, d in enumerate(docids.tolist(), start=1):
                    fused[d] = fused.get(d, 0.0) + 1.0 / (self.k + r)
            order = sorted(fused, key=lambda d: (-fused[d], d))[: self.depth]
            out[q] = (np.array(order), np.array([fused[d] for d in order]))
            self._part_lists[q] = [lists.get(q, (np.array([]), np.array([]))) for lists in per]
        return out

    def score_texts(self, query: str, texts: Sequence[str], qid: str | None = None,
                    docid: str | None = None) -> np.ndarray:
        if qid is None or qid not in self._part_lists:
            raise InputError("the hybrid victim scores a text against a ranked query", fix="call lists() first")
        total = np.zeros(len(texts))
        for part, (docids, scores) in zip(self.parts, self._part_lists[qid]):
            others = scores[docids != docid] if docid is not None else scores
            for i, s in enumerate(part.score_texts(query, texts)):
                r = rank_of(s, others)
                if r <= self.depth:
                    total[i] += 1.0 / (self.k + r)
        return total


class RerankerVictim(Victim):
    """A cross-encoder reranking a first stage's top ``depth`` (its logits are the scores)."""

    def __init__(self, first: Victim, reranker: Any, collection: Any, depth: int = 100, name: str = "reranker") -> None:
        super().__init__(name, depth)
        self.first, self.reranker, self.collection = first, reranker, collection

    def _rank(self, queries: Queries):
        out = {}
        firsts = self.first.lists(queries)
        for q, text in queries:
            docids = firsts.get(q, (np.array([]), None))[0][: self.depth]
            scores = self.score_texts(text, self.collection.doc_texts(docids.tolist()))
            order = np.lexsort((-np.arange(len(docids)), -scores))
            out[q] = (docids[order], scores[order])
        return out

    def score_texts(self, query: str, texts: Sequence[str], qid: str | None = None,
                    docid: str | None = None) -> np.ndarray:
        from rankstack.rerank.base import require_bare_pairs

        require_bare_pairs(self.reranker, "an attack on a reranker")
        return np.asarray(self.reranker.score([query] * len(texts), list(texts)), dtype=np.float64)


class SmoothedVictim(Victim):
    """The CertDR defence: a reranker victim whose top ``top_m`` are re-scored by the smoothed score.

    Only the top of the list is smoothed (cost: ``top_m x samples`` pairs per query), so the list is
    partial: an attack succeeds when the target's smoothed score beats the 10th smoothed score.
    """

    def __init__(self, base: RerankerVictim, smoothing: Any, synonyms: Any = None, top_m: int = 10,
                 seed: int = 0) -> None:
        super().__init__(base.name + "+smoothing", top_m, partial=True)
        self.base, self.smoothing, self.synonyms, self.seed = base, smoothing, synonyms, seed

    def _g(self, query: str, texts: Sequence[str]) -> np.ndarray:
        import zlib

        from rankstack.robust.certify import smoothed_scores

        rng = np.random.default_rng([self.seed, zlib.crc32(query.encode())])
        g, _ = smoothed_scores(lambda ts: self.base.score_texts(query, ts), list(texts), self.smoothing, rng,
                               self.synonyms)
        return g

    def _rank(self, queries: Queries):
        out = {}
        base = self.base.lists(queries)
        for q, text in queries:
            docids = base[q][0][: self.depth]
            g = self._g(text, self.base.collection.doc_texts(docids.tolist()))
            order = np.argsort(-g, kind="stable")
            out[q] = (docids[order], g[order])
        return out

    def score_texts(self, query: str, texts: Sequence[str], qid: str | None = None,
                    docid: str | None = None) -> np.ndarray:
        return self._g(query, texts)
