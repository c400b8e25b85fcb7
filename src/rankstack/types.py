"""Queries, Run and Qrels: immutable, columnar value objects shared by every part of rankstack.

Why columnar: runs of 10^5-10^6 rows are sorted, cut and evaluated with NumPy instead of Python
dicts. Why canonical order: a Run is always sorted by qid (string order), then score descending,
ties broken by docid *descending* -- exactly what trec_eval does -- so ranks, cut-offs and measures
agree with trec_eval even on tied scores.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rankstack.errors import InputError

__all__ = ["Queries", "WeightedQueries", "Run", "Qrels", "canonical_order"]


def _str_array(values) -> np.ndarray:
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values)
    if arr.size == 0:
        return np.array([], dtype="<U1")
    if arr.dtype.kind != "U":
        arr = arr.astype(str)
    return arr


def _codes(values: np.ndarray) -> np.ndarray:
    """Integer codes whose order is the string order of ``values`` (hash-based: O(n) + sort of uniques)."""
    import pandas as pd

    return pd.factorize(values, sort=True)[0]


def _is_canonical(q_code: np.ndarray, d_code: np.ndarray, scores: np.ndarray) -> bool:
    """O(n) check that rows are already in canonical order, so producers that sort pay no sort here."""
    if len(q_code) < 2:
        return True
    dq = np.diff(q_code)
    if (dq < 0).any():
        return False
    same_q = dq == 0
    ds = np.diff(scores)
    if (same_q & (ds > 0)).any():
        return False
    return not (same_q & (ds == 0) & (np.diff(d_code) >= 0)).any()


def _strings_canonical(qids: np.ndarray, docids: np.ndarray, scores: np.ndarray) -> bool:
    """Canonical-order check on the strings themselves (no factorising)."""
    if len(qids) < 2:
        return True
    if (qids[1:] < qids[:-1]).any():
        return False
    same_q = qids[1:] == qids[:-1]
    ds = np.diff(scores)
    if (same_q & (ds > 0)).any():
        return False
    ties = np.flatnonzero(same_q & (ds == 0))
    return not (docids[ties + 1] >= docids[ties]).any()


def _canonical_codes(qids: np.ndarray, docids: np.ndarray, scores: np.ndarray):
    if len(qids) == 0:
        return np.arange(0), np.arange(0), np.arange(0)
    q_code, d_code = _codes(qids), _codes(docids)
    if _is_canonical(q_code, d_code, scores):
        return np.arange(len(qids)), q_code, d_code
    # np.lexsort sorts by the last key first.
    return np.lexsort((-d_code, -scores, q_code)), q_code, d_code


def canonical_order(qids: np.ndarray, docids: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Permutation sorting rows by qid ascending, score descending, docid descending (trec_eval)."""
    return _canonical_codes(_str_array(qids), _str_array(docids), np.asarray(scores, dtype=np.float64))[0]


@dataclass(frozen=True)
class Queries:
    """Query ids and texts, in a fixed order. Look up a text with ``queries[qid]``."""

    qids: tuple[str, ...]
    texts: tuple[str, ...]
    _index: Mapping[str, int] = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if len(self.qids) != len(self.texts):
            raise InputError(f"{len(self.qids)} query ids but {len(self.texts)} texts")
        index = {q: i for i, q in enumerate(self.qids)}
        if len(index) != len(self.qids):
            dup = next(q for q in self.qids if self.qids.count(q) > 1)
            raise InputError(f"query id {dup!r} appears more than once", fix="make query ids unique")
        object.__setattr__(self, "_index", index)

    @classmethod
    def from_dict(cls, mapping: Mapping[str, str]) -> Queries:
        return cls(tuple(str(k) for k in mapping), tuple(str(v) for v in mapping.values()))

    def __len__(self) -> int:
        return len(self.qids)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(zip(self.qids, self.texts))

    def __contains__(self, qid: object) -> bool:
        return qid in self._index

    def __getitem__(self, qid: str) -> str:
        try:
            return self.texts[self._index[qid]]
        except KeyError:
            raise InputError(f"unknown query id {qid!r}", fix="check the queries file") from None

    def subset(self, qids) -> Queries:
        keep = [q for q in qids if q in self._index]
        return Queries(tuple(keep), tuple(self[q] for q in keep))

    def to_dict(self) -> dict[str, str]:
        return dict(zip(self.qids, self.texts))


@dataclass(frozen=True, eq=False)
class Run:
    """A ranked list of (qid, docid, score) rows, always in canonical (trec_eval) order.

    ``queries`` optionally travels with the run so that rerankers downstream can read query texts.
    ``metadata`` is an optional mapping (a private copy; treat it as read-only) of facts about how the run was made (e.g. the
    per-query LLM cost sums of an LLM reranker under ``"llm"``); it travels through ``replace``,
    cut-offs and renaming, and takes no part in ordering or comparison.
    """

    qids: np.ndarray
    docids: np.ndarray
    scores: np.ndarray
    name: str = "run"
    queries: Queries | None = None
    _offsets: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    metadata: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", dict(self.metadata or {}))  # a copy: picklable, not shared
        qids, docids = _str_array(self.qids), _str_array(self.docids)
        scores = np.asarray(self.scores, dtype=np.float64)
        if not (len(qids) == len(docids) == len(scores)):
            raise InputError(
                f"run columns differ in length: {len(qids)} qids, {len(docids)} docids, "
                f"{len(scores)} scores"
            )
        if len(scores) and not np.all(np.isfinite(scores)):
            bad = int(np.flatnonzero(~np.isfinite(scores))[0])
            raise InputError(
                f"score of ({qids[bad]!r}, {docids[bad]!r}) is {scores[bad]!r}, not a finite number",
                fix="replace NaN/inf scores before building a Run",
            )
        order, q_code, d_code = _canonical_codes(qids, docids, scores)
        qids0, docids0 = qids, docids
        qids, docids, scores = qids[order], docids[order], scores[order]
        if len(order):
            pair = q_code.astype(np.int64) * (int(d_code.max()) + 1) + d_code
            import pandas as pd

            dup = pd.Series(pair).duplicated(keep="first").to_numpy()
            if dup.any():
                i = int(np.flatnonzero(dup)[0])
                raise InputError(
                    f"document {docids0[i]!s} appears more than once for query {qids0[i]!s}",
                    fix="keep one score per (query, document)",
                )
        self._set_columns(qids, docids, scores)

    def _set_columns(self, qids: np.ndarray, docids: np.ndarray, scores: np.ndarray) -> None:
        for v in (qids, docids, scores):
            v.setflags(write=False)
        object.__setattr__(self, "qids", qids)
        object.__setattr__(self, "docids", docids)
        object.__setattr__(self, "scores", scores)
        if len(qids):
            starts = np.flatnonzero(np.r_[True, qids[1:] != qids[:-1]])
            offsets = np.r_[starts, len(qids)]
        else:
            offsets = np.array([0])
        object.__setattr__(self, "_offsets", offsets)

    # construction -------------------------------------------------------------------------
    @classmethod
    def from_unique_ranked(cls, qids, docids, scores, name: str = "run",
                           queries: Queries | None = None) -> Run:
        """Fast path for producers whose rows are unique per query by construction (top-k of an index).

        Finiteness and canonical order are still checked (O(n), no sort when already in order; rows
        out of order fall back to the full constructor); only the duplicate check is skipped, which
        is the caller's guarantee.
        """
        q, d = _str_array(qids), _str_array(docids)
        sc = np.asarray(scores, dtype=np.float64)
        if len(q) != len(d) or len(d) != len(sc) or not np.all(np.isfinite(sc)) or not _strings_canonical(q, d, sc):
            return cls(q, d, sc, name=name, queries=queries)
        run = object.__new__(cls)
        object.__setattr__(run, "name", name)
        object.__setattr__(run, "queries", queries)
        object.__setattr__(run, "metadata", {})
        run._set_columns(q.copy(), d.copy(), sc.copy())
        return run

    @classmethod
    def from_dict(
        cls, mapping: Mapping[str, Mapping[str, float]], name: str = "run", queries: Queries | None = None
    ) -> Run:
        qids, docids, scores = [], [], []
        for q, docs in mapping.items():
            for d, s in docs.items():
                qids.append(str(q))
                docids.append(str(d))
                scores.append(float(s))
        return cls(np.array(qids), np.array(docids), np.array(scores), name=name, queries=queries)

    @classmethod
    def empty(cls, name: str = "run") -> Run:
        return cls(np.array([], dtype="<U1"), np.array([], dtype="<U1"), np.array([]), name=name)

    @classmethod
    def concat(cls, runs: list[Run], name: str | None = None) -> Run:
        if not runs:
            return cls.empty(name or "run")
        return cls(
            np.concatenate([r.qids for r in runs]),
            np.concatenate([r.docids for r in runs]),
            np.concatenate([r.scores for r in runs]),
            name=name or runs[0].name,
            queries=runs[0].queries,
        )

    def replace(self, **changes) -> Run:
        fields = {"qids": self.qids, "docids": self.docids, "scores": self.scores,
                  "name": self.name, "queries": self.queries, "metadata": self.metadata}
        fields.update(changes)
        return Run(**fields)

    def with_metadata(self, **entries: Any) -> Run:
        """A copy whose metadata has ``entries`` added (replacing entries of the same key)."""
        return self.replace(metadata={**self.metadata, **entries})

    def with_queries(self, queries: Queries) -> Run:
        return self.replace(queries=queries)

    def renamed(self, name: str) -> Run:
        return self.replace(name=name)

    # access -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.qids)

    @property
    def query_ids(self) -> list[str]:
        return [str(self.qids[s]) for s in self._offsets[:-1]] if len(self.qids) else []

    def groups(self) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """Yield ``(qid, docids, scores)`` per query, in rank order."""
        for s, e in zip(self._offsets[:-1], self._offsets[1:]):
            if e > s:
                yield str(self.qids[s]), self.docids[s:e], self.scores[s:e]

    def ranks(self) -> np.ndarray:
        """1-based rank of each row within its query."""
        starts = np.repeat(self._offsets[:-1], np.diff(self._offsets)) if len(self.qids) else np.array([], int)
        return np.arange(len(self.qids)) - starts + 1

    def top_k(self, k: int) -> Run:
        """Keep the first ``k`` documents of every query (the ``% k`` operator)."""
        if k < 1 or k != int(k):
            raise InputError(f"cut-off must be a positive integer, got {k!r}")
        keep = self.ranks() <= k
        return self.replace(qids=self.qids[keep], docids=self.docids[keep], scores=self.scores[keep])

    def for_query(self, qid: str) -> tuple[np.ndarray, np.ndarray]:
        for q, d, s in self.groups():
            if q == qid:
                return d, s
        return np.array([], dtype="<U1"), np.array([])

    def restrict(self, qids) -> Run:
        keep = np.isin(self.qids, np.asarray(list(qids), dtype=str))
        return self.replace(qids=self.qids[keep], docids=self.docids[keep], scores=self.scores[keep])

    def to_dict(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for q, d, s in self.groups():
            out[q] = {str(x): float(y) for x, y in zip(d, s)}
        return out

    def to_pandas(self):
        """A DataFrame with columns qid, docid, score, rank (PyTerrier-style), in canonical order."""
        import pandas as pd

        return pd.DataFrame({"qid": self.qids, "docid": self.docids, "score": self.scores,
                             "rank": self.ranks()})

    @classmethod
    def from_pandas(cls, frame, name: str = "run", queries: Queries | None = None) -> Run:
        """Build from a DataFrame with columns qid, docid (or docno), score; other columns ignored."""
        docid = "docid" if "docid" in frame.columns else "docno"
        missing = [c for c in ("qid", docid, "score") if c not in frame.columns]
        if missing:
            raise InputError(f"DataFrame lacks column(s) {missing}; has {list(frame.columns)}",
                             fix="name the columns qid, docid and score")
        return cls(frame["qid"].astype(str).to_numpy(), frame[docid].astype(str).to_numpy(),
                   frame["score"].to_numpy(dtype=np.float64), name=name, queries=queries)

    def __repr__(self) -> str:
        return f"Run(name={self.name!r}, queries={len(self.query_ids)}, rows={len(self)})"


@dataclass(frozen=True, eq=False)
class Qrels:
    """Relevance judgements: (qid, docid, relevance) rows, relevance an integer (0 = non-relevant)."""

    qids: np.ndarray
    docids: np.ndarray
    relevance: np.ndarray
    name: str = "qrels"

    def __post_init__(self) -> None:
        qids, docids = _str_array(self.qids), _str_array(self.docids)
        rel = np.asarray(self.relevance)
        if rel.size and rel.dtype.kind == "f":
            if not np.all(np.isfinite(rel)) or np.any(rel != np.round(rel)):
                raise InputError("relevance labels must be integers", fix="round or map your labels")
        rel = rel.astype(np.int64) if rel.size else np.array([], dtype=np.int64)
        if not (len(qids) == len(docids) == len(rel)):
            raise InputError("qrels columns differ in length")
        order = np.lexsort((docids, qids)) if len(qids) else np.arange(0)
        qids, docids, rel = qids[order], docids[order], rel[order]
        if len(qids) > 1:
            dup = (qids[1:] == qids[:-1]) & (docids[1:] == docids[:-1])
            if dup.any():
                i = int(np.flatnonzero(dup)[0])
                raise InputError(
                    f"document {docids[i]!r} is judged more than once for query {qids[i]!r}",
                    fix="keep one judgement per (query, document)",
                )
        for v in (qids, docids, rel):
            v.setflags(write=False)
        object.__setattr__(self, "qids", qids)
        object.__setattr__(self, "docids", docids)
        object.__setattr__(self, "relevance", rel)

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Mapping[str, int]], name: str = "qrels") -> Qrels:
        rows = [(str(q), str(d), int(r)) for q, docs in mapping.items() for d, r in docs.items()]
        if not rows:
            return cls(np.array([], dtype="<U1"), np.array([], dtype="<U1"), np.array([], dtype=np.int64), name)
        q, d, r = zip(*rows)
        return cls(np.array(q), np.array(d), np.array(r), name)

    def __len__(self) -> int:
        return len(self.qids)

    @property
    def query_ids(self) -> list[str]:
        return [str(q) for q in dict.fromkeys(self.qids.tolist())]

    def to_dict(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for q, d, r in zip(self.qids.tolist(), self.docids.tolist(), self.relevance.tolist()):
            out.setdefault(q, {})[d] = int(r)
        return out

    def restrict(self, qids) -> Qrels:
        keep = np.isin(self.qids, np.asarray(list(qids), dtype=str))
        return Qrels(self.qids[keep], self.docids[keep], self.relevance[keep], self.name)

    def __repr__(self) -> str:
        return f"Qrels(name={self.name!r}, queries={len(set(self.qids.tolist()))}, judgements={len(self)})"


@dataclass(frozen=True)
class WeightedQueries(Queries):
    """Queries plus per-query weighted terms in one index's term space (what RM3/Bo1 expansion yields).

    Why a subclass: every stage that reads ``Queries`` keeps working (texts stay the original ones, so
    a reranker downstream reads the user's query), while a BM25 stage that receives them scores
    ``sum_t w_t * BM25(t, d)`` over its whole index instead of the bare text. ``term_weights[i]`` holds
    ``(term, weight)`` pairs for ``qids[i]`` (weight descending, then term); ``analyzer`` names the
    tokenisation that made the terms (a BM25 stage with another one refuses them).
    """

    term_weights: tuple[tuple[tuple[str, float], ...], ...] = ()
    analyzer: Mapping[str, object] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.term_weights) != len(self.qids):
            raise InputError(f"{len(self.qids)} query ids but {len(self.term_weights)} term-weight lists")
        for qid, pairs in zip(self.qids, self.term_weights):
            for term, weight in pairs:
                if not isinstance(term, str) or not np.isfinite(weight) or weight < 0:
                    raise InputError(f"query {qid!r}: term weight ({term!r}, {weight!r}) is not a word with a "
                                     "finite, non-negative weight")

    def weights_of(self, qid: str) -> dict[str, float]:
        """The weighted terms of one query as a dict (insertion order = weight descending)."""
        self[qid]  # unknown qid -> InputError
        return dict(self.term_weights[self._index[qid]])

    def subset(self, qids) -> WeightedQueries:
        keep = [q for q in qids if q in self._index]
        return WeightedQueries(tuple(keep), tuple(self[q] for q in keep),
                               term_weights=tuple(self.term_weights[self._index[q]] for q in keep),
                               analyzer=self.analyzer)

    def plain(self) -> Queries:
        """The same queries without weights (what a stage emits once it has used them)."""
        return Queries(self.qids, self.texts)
