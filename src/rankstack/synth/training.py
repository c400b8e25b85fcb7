"""Training data from synthetic queries: positives, hard negatives, GPL pseudo-labels, real-label mixing.

Why: a generated query's source document is its only known positive (InPars, Bonifacio et al. 2022;
Promptagator, Dai et al. 2022); everything else a first stage ranks high for it is a *hard* negative,
mined from BM25 and from a dense retriever as in "GPL: Generative Pseudo Labeling for Unsupervised
Domain Adaptation of Dense Retrieval" (Wang et al., NAACL 2022). Mined negatives for a synthetic query
are often relevant too (the corpus has near-duplicates of the source), so the recipe runs the
existing false-negative filter (:class:`rankstack.train.negatives.FalseNegativeFilter`) over them, and
GPL's answer to the same problem is offered as well: a teacher cross-encoder scores every (query,
candidate) pair and the student learns the teacher's score *margins* with Margin-MSE
(:func:`rankstack.losses.distill.margin_mse`; Hofstätter et al. 2020), so a relevant "negative" is
not pushed down. Real judgements, when a collection has some, are mixed in as more groups.

The functions here return plain value objects (``Queries``, ``Qrels``, negatives per query, a teacher
``Run``); turning them into the reranker recipe's training groups, and GPL's loss (the recipe's
``DistillationMix`` with ``kd="margin_mse"``), is the ``adapt`` recipe's job (both live in
``recipes``, above this package).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.errors import InputError
from rankstack.synth.records import SyntheticQuery
from rankstack.types import Qrels, Queries, Run

__all__ = ["SyntheticLabels", "labels_from_synthetic", "mine_negatives", "merge_labels", "teacher_run"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyntheticLabels:
    """Synthetic queries as training labels: each query's source document judged relevant (grade 1).

    ``dropped`` counts records left out and why; ``generators`` counts kept records per generator.
    """

    queries: Queries
    qrels: Qrels
    dropped: dict[str, int] = field(default_factory=dict)
    generators: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.queries)


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def labels_from_synthetic(records: Iterable[SyntheticQuery], doc_ids: Collection[str], *,
                          source: str | Path | None = None) -> SyntheticLabels:
    """Queries and qrels from generated (query, source document) pairs; the source is the positive.

    A record naming a document that ``doc_ids`` lacks is an InputError (the queries were made from
    another corpus: training on them would be silently wrong). Records with blank text and repeats
    of the same (normalised text, document) are dropped and counted. No usable record is an error.
    """
    texts: dict[str, str] = {}
    judged: dict[str, dict[str, int]] = {}
    seen: set[tuple[str, str]] = set()
    dropped: Counter[str] = Counter()
    generators: Counter[str] = Counter()
    total = 0
    for rec in records:
        total += 1
        if rec.doc_id not in doc_ids:
            raise InputError(f"synthetic query {rec.qid!r} names document {rec.doc_id!r}, which the collection "
                             f"does not have", path=source,
                             fix="generate the queries from this collection (rankstack generate-queries "
                                 "--collection ...)")
        if not rec.text.strip():
            dropped["empty text"] += 1
            continue
        key = (_norm(rec.text), rec.doc_id)
        if key in seen:
            dropped["duplicate"] += 1
            continue
        if rec.qid in texts:
            raise InputError(f"synthetic query id {rec.qid!r} appears more than once", path=source,
                             fix="give each generated query its own qid")
        seen.add(key)
        texts[rec.qid] = rec.text.strip()
        judged[rec.qid] = {rec.doc_id: 1}
        generators[rec.generator] += 1
    if not texts:
        what = "no synthetic queries" if total == 0 else f"none of the {total} synthetic queries is usable"
        raise InputError(what, path=source, fix="generate queries first (rankstack generate-queries), or lower "
                                                "the filters' thresholds")
    return SyntheticLabels(Queries.from_dict(texts), Qrels.from_dict(judged, name="synthetic"),
                           dict(dropped), dict(generators))


def mine_negatives(queries: Queries, qrels: Qrels, runs: Mapping[str, Run], n: int, *, depth: int = 30,
                   all_docids: Sequence[str] | None = None, seed: int = 0) -> dict[str, list[str]]:
    """``n`` hard negatives per query, drawn in equal shares from several first stages.

    Each source in ``runs`` (e.g. ``{"bm25": ..., "dense": ...}``) draws ``n`` candidates from its
    top ``depth`` with :func:`rankstack.train.negatives.sample_negatives` (judged documents, i.e. the
    source document, are never negatives); the draws are interleaved source by source without
    repeats and cut at ``n``, so two sources give about half each, and one source with too few
    candidates is topped up by the others, then by random documents of ``all_docids``. Seeded.
    """
    from rankstack.train.negatives import sample_negatives

    if not runs:
        raise InputError("mining hard negatives needs at least one first-stage run", fix="pass runs={'bm25': run}")
    draws = [sample_negatives(queries, qrels, n, name if name in ("bm25", "dense") else "bm25", run=run,
                              depth=depth, seed=seed + i) for i, (name, run) in enumerate(sorted(runs.items()))]
    judged = qrels.to_dict()
    rng = np.random.default_rng(seed + len(runs))
    pool = list(all_docids) if all_docids is not None else []
    out: dict[str, list[str]] = {}
    for qid in queries.qids:
        lists = [d.get(qid, []) for d in draws]
        chosen: list[str] = []
        for i in range(max((len(x) for x in lists), default=0)):
            for lst in lists:
                if i < len(lst) and lst[i] not in chosen:
                    chosen.append(lst[i])
        chosen = chosen[:n]
        exclude = set(judged.get(qid, {})) | set(chosen)
        tries = 0
        while len(chosen) < n and pool and tries < 20 * n + 100:
            tries += 1
            d = pool[int(rng.integers(len(pool)))]
            if d not in exclude:
                exclude.add(d)
                chosen.append(d)
        out[qid] = chosen
    return out


def merge_labels(parts: Sequence[tuple[Queries, Qrels]]) -> tuple[Queries, Qrels]:
    """One query set and qrels from several (e.g. a collection's real training split + synthetic).

    A query id in two parts is an InputError: merging would give one query two texts or mix their
    judgements.
    """
    texts: dict[str, str] = {}
    judged: dict[str, dict[str, int]] = {}
    for queries, qrels in parts:
        clash = next((q for q in queries.qids if q in texts), None)
        if clash is not None:
            raise InputError(f"query id {clash!r} is both a real and a synthetic query (or in two synthetic "
                             f"sets)", fix="give synthetic queries their own ids (generate-queries prefixes them)")
        texts.update(queries.to_dict())
        for q, docs in qrels.restrict(list(queries.qids)).to_dict().items():
            judged[q] = dict(docs)
    return Queries.from_dict(texts), Qrels.from_dict(judged, name="mixed")


def teacher_run(score: Callable[[list[str], list[str]], Any], queries: Queries,
                candidates: Mapping[str, Sequence[str]], doc_texts: Callable[[Sequence[str]], list[str]],
                name: str = "teacher") -> Run:
    """A teacher's score for every (query, candidate) pair, as a Run (GPL's pseudo-labels).

    ``score(query_texts, doc_texts) -> scores`` is a cross-encoder's batched scorer
    (:meth:`rankstack.rerank.base.PairScorer.score`). Non-finite scores are an error: a pseudo-label
    must never be silently NaN.
    """
    qids, docids, q_texts = [], [], []
    for qid in queries.qids:
        for d in dict.fromkeys(candidates.get(qid, ())):
            qids.append(qid)
            docids.append(d)
            q_texts.append(queries[qid])
    if not qids:
        return Run.empty(name)
    scores = np.asarray(score(q_texts, doc_texts(docids)), dtype=np.float64)
    if scores.shape != (len(qids),) or not np.all(np.isfinite(scores)):
        raise InputError(f"the teacher returned {scores.shape} scores for {len(qids)} pairs, or non-finite ones",
                         fix="check the teacher model (rankstack rerank with it should work)")
    return Run.from_unique_ranked(np.array(qids), np.array(docids), scores, name=name)
