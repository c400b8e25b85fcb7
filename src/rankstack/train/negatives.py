"""Negatives for reranker training: random, BM25-hard, dense-hard, and a false-negative filter.

Why hard negatives: a reranker sees first-stage candidates at test time, so training against the
candidates a first stage ranks high (not random documents) matches what it must discriminate
("Passage Re-ranking with BERT", Nogueira & Cho, 2019; "RocketQA", Qu et al., NAACL 2021).

Why a false-negative filter: sparse judgements (pooling) leave relevant documents unjudged, and the
harder the mining, the more of them enter training labelled 0. "Hard Negatives or False Negatives:
Correcting Pooling Bias in Training Neural Ranking Models" (Xu et al., CIKM 2022) shows this bias
and corrects it by down-weighting likely false negatives. :class:`FalseNegativeFilter` implements the
simple teacher-based form of that idea (not the paper's full coupled estimation): any teacher
scorer (a dense model, or a first trained cross-encoder) scores the positive(s) and the mined
candidates of each query; a candidate the teacher scores above the query's weakest positive (plus
``margin``) is dropped, or down-weighted (``mode="downweight"``: its per-item loss weight becomes
``weight``; pairwise/listwise losses weight only positive items, so use ``drop`` with them). It
reports how many candidates it flagged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.errors import InputError
from rankstack.types import Qrels, Queries, Run

__all__ = ["NEGATIVE_METHODS", "positives_of", "sample_negatives", "first_stage_run", "FalseNegativeFilter",
           "FilterReport", "DenseTeacher", "dense_available"]

log = logging.getLogger(__name__)

NEGATIVE_METHODS = ("random", "bm25", "dense")


def positives_of(qrels: Qrels, min_relevance: int = 1) -> dict[str, dict[str, int]]:
    """Judged-relevant documents (relevance >= ``min_relevance``) per query."""
    out: dict[str, dict[str, int]] = {}
    for q, docs in qrels.to_dict().items():
        rel = {d: r for d, r in docs.items() if r >= min_relevance}
        if rel:
            out[q] = rel
    return out


def dense_available() -> bool:
    """True when the dense retriever module (and its FAISS dependency) can be imported."""
    try:
        import importlib

        importlib.import_module("rankstack.retrieve.dense")
        importlib.import_module("faiss")
        return True
    except ImportError:
        return False


def first_stage_run(collection: Any, queries: Queries, method: str = "bm25", k: int = 100,
                    cache_dir: str | Path | None = None, spec: str | Mapping[str, Any] | None = None) -> Run:
    """Run a registered first stage (``bm25``, ``dense`` or any spec) over ``queries``, top ``k``.

    ``k`` is pushed down to the retriever (``stage.at_least(k)``), so mining deeper than a
    retriever's own default depth (BM25: 1000) returns ``k`` documents, not a silent 1000.
    """
    from rankstack.registry import Context, build

    if method == "dense" and spec is None and not dense_available():
        raise InputError("dense negatives need rankstack.retrieve.dense and faiss",
                         fix="install faiss-cpu, or use --negatives bm25")
    if spec is None:
        spec = method
    context = Context(collection=collection, cache_dir=Path(cache_dir) if cache_dir else None)
    if isinstance(spec, str) and any(op in spec for op in (">>", "%", "(")):
        from rankstack.pipeline.expression import parse_pipeline

        stage = parse_pipeline(spec, context)
    else:
        stage = build(spec, ("retriever", "stage"), context=context)
    return (stage.at_least(k) % k)(queries)


def sample_negatives(queries: Queries, qrels: Qrels, n: int, method: str = "bm25", *, run: Run | None = None,
                     all_docids: Sequence[str] | None = None, depth: int = 30, skip: int = 0,
                     seed: int | np.random.Generator = 0) -> dict[str, list[str]]:
    """``n`` negatives per query (judged documents of any grade are never negatives).

    ``random``: uniform over ``all_docids``. ``bm25``/``dense`` (or any run): uniform over ranks
    ``skip+1 .. depth`` of ``run`` for that query, topped up with random documents when the run is
    short. Sampling without replacement; seeded.
    """
    if method not in NEGATIVE_METHODS and run is None:
        raise InputError(f"unknown negatives method {method!r}", fix=f"choose one of {', '.join(NEGATIVE_METHODS)}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InputError(f"n (negatives per query) must be a non-negative integer, got {n!r}")
    if depth < 1 or skip < 0 or skip >= depth:
        raise InputError(f"need 0 <= skip < depth, got skip={skip}, depth={depth}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    judged = qrels.to_dict()
    pool_all = np.asarray(list(all_docids) if all_docids is not None else [], dtype=str)
    if method == "random" and len(pool_all) == 0:
        raise InputError("random negatives need all_docids (the collection's document ids)")
    if method != "random" and run is None:
        raise InputError(f"{method} negatives need the first-stage run", fix="pass run=first_stage_run(...)")
    per_query = {q: d for q, d, _ in run.groups()} if run is not None and method != "random" else {}
    out: dict[str, list[str]] = {}
    for qid in queries.qids:
        exclude = set(judged.get(qid, {}))
        chosen: list[str] = []
        if method != "random":
            cand = [str(d) for d in per_query.get(qid, [])[skip:depth] if str(d) not in exclude]
            if cand:
                take = min(n, len(cand))
                chosen = [cand[i] for i in sorted(rng.choice(len(cand), size=take, replace=False))]
        if len(chosen) < n and len(pool_all):
            taken = exclude | set(chosen)
            tries = 0
            while len(chosen) < n and tries < 20 * n + 100:
                d = str(pool_all[rng.integers(len(pool_all))])
                tries += 1
                if d not in taken:
                    taken.add(d)
                    chosen.append(d)
        out[qid] = chosen
    return out


# ---------------------------------------------------------------------------------------------
# false-negative filtering
@dataclass
class FilterReport:
    """What the filter did: counts over all groups, and the flagged (qid, docid) pairs."""

    candidates: int = 0
    flagged: int = 0
    dropped: int = 0
    downweighted: int = 0
    groups_affected: int = 0
    flagged_pairs: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"candidates": self.candidates, "flagged": self.flagged, "dropped": self.dropped,
                "downweighted": self.downweighted, "groups_affected": self.groups_affected,
                "flagged_fraction": self.flagged / self.candidates if self.candidates else 0.0}

    def __str__(self) -> str:
        return (f"false-negative filter: {self.flagged}/{self.candidates} candidates flagged "
                f"({self.dropped} dropped, {self.downweighted} down-weighted) in {self.groups_affected} groups")


def _teacher_fn(teacher: Any) -> Callable[[list[str], list[str]], np.ndarray]:
    if hasattr(teacher, "score") and callable(teacher.score):
        return teacher.score  # a PairScorer: length-sorted batches
    if hasattr(teacher, "score_pairs"):
        return teacher.score_pairs
    if callable(teacher):
        return teacher
    raise InputError(f"teacher must be a PairScorer or a function (query_texts, doc_texts) -> scores, "
                     f"got {type(teacher).__name__}")


class FalseNegativeFilter:
    """Drop or down-weight mined negatives that a teacher scores above the positive (Xu et al., 2022).

    ``teacher``: a PairScorer (e.g. a trained :class:`~rankstack.rerank.cross_encoder.CrossEncoderReranker`),
    a :class:`DenseTeacher`, or any ``f(query_texts, doc_texts) -> scores``. ``margin``: a candidate
    is flagged when ``teacher(candidate) > min(teacher(positives)) + margin``.
    """

    MODES = ("drop", "downweight")

    def __init__(self, teacher: Any, mode: str = "drop", margin: float = 0.0, weight: float = 0.1) -> None:
        if mode not in self.MODES:
            raise InputError(f"unknown false-negative mode {mode!r}", fix="choose 'drop' or 'downweight'")
        if not 0.0 <= weight <= 1.0:
            raise InputError(f"down-weight must be in [0, 1], got {weight!r}")
        self.score = _teacher_fn(teacher)
        self.mode, self.margin, self.weight = mode, float(margin), float(weight)

    def apply(self, groups: list[Any], doc_texts: Callable[[Sequence[str]], list[str]]) -> tuple[list[Any], FilterReport]:
        """Filter training groups (objects with ``query``, ``docids``, ``labels``, ``weights`` lists).

        Returns new groups (inputs are not modified) and a :class:`FilterReport`.
        """
        import dataclasses

        q_texts, d_ids, owner = [], [], []
        for gi, g in enumerate(groups):
            for j, d in enumerate(g.docids):
                q_texts.append(g.query)
                d_ids.append(d)
                owner.append((gi, j))
        scores = np.asarray(self.score(q_texts, doc_texts(d_ids)), dtype=np.float64) if q_texts else np.array([])
        per_group: dict[int, dict[int, float]] = {}
        for (gi, j), s in zip(owner, scores):
            per_group.setdefault(gi, {})[j] = float(s)
        report = FilterReport()
        out = []
        for gi, g in enumerate(groups):
            s = per_group.get(gi, {})
            pos = [s[j] for j, lab in enumerate(g.labels) if lab > 0]
            neg_idx = [j for j, lab in enumerate(g.labels) if lab <= 0]
            report.candidates += len(neg_idx)
            if not pos:
                out.append(g)
                continue
            bar = min(pos) + self.margin
            flagged = [j for j in neg_idx if s[j] > bar]
            if not flagged:
                out.append(g)
                continue
            report.flagged += len(flagged)
            report.groups_affected += 1
            report.flagged_pairs.extend((g.qid, g.docids[j]) for j in flagged)
            if self.mode == "drop":
                keep = [j for j in range(len(g.docids)) if j not in set(flagged)]
                report.dropped += len(flagged)
                out.append(dataclasses.replace(g, **{k: [getattr(g, k)[j] for j in keep]
                                                     for k in g.item_fields()}))
            else:
                weights = list(g.weights)
                for j in flagged:
                    weights[j] = weights[j] * self.weight
                report.downweighted += len(flagged)
                out.append(dataclasses.replace(g, weights=weights))
        log.info("%s", report)
        return out, report


class DenseTeacher:
    """Cosine similarity of a bi-encoder as a pair scorer (a cheap teacher for the filter).

    With ``collection`` and ``cache_dir`` the corpus vectors come from the same on-disk cache the
    dense retriever uses, so a dense first stage run earlier makes the teacher nearly free.
    """

    def __init__(self, encoder: Any = "minilm", collection: Any = None, cache_dir: str | Path | None = None) -> None:
        from rankstack.encode.base import load_encoder

        self.encoder = load_encoder(encoder)
        self.collection, self.cache_dir = collection, cache_dir
        self._doc_vectors: dict[str, np.ndarray] | None = None

    def _corpus_vectors(self) -> dict[str, np.ndarray]:
        """Document text -> vector for the whole corpus, via the shared embedding cache."""
        if self.collection is None:
            return {}
        if self._doc_vectors is None:
            from rankstack.encode.base import cached_encode

            docs = self.collection.documents()
            ids = list(docs)
            texts = [docs[d].contents for d in ids]
            vecs = cached_encode(self.encoder, texts, ids=ids, cache_dir=self.cache_dir)
            self._doc_vectors = dict(zip(texts, vecs))
        return self._doc_vectors

    def score(self, query_texts: Sequence[str], doc_texts: Sequence[str]) -> np.ndarray:
        uq = list(dict.fromkeys(query_texts))
        qv = dict(zip(uq, self.encoder.encode(uq)))
        known = self._corpus_vectors()
        missing = [d for d in dict.fromkeys(doc_texts) if d not in known]
        dv = dict(zip(missing, self.encoder.encode(missing))) if missing else {}
        return np.array([float(np.dot(qv[q], known[d] if d in known else dv[d]))
                         for q, d in zip(query_texts, doc_texts)])
