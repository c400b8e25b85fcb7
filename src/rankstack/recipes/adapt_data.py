"""Synthetic queries -> the reranker recipe's training data (a helper of :mod:`rankstack.recipes.adapt`).

Why here and not in ``synth``: the training groups, the validator and the distillation hooks are the
reranker recipe's (:mod:`rankstack.recipes.reranker_data`), a layer above ``synth``. This module
wires :mod:`rankstack.synth.training` (labels, mined negatives, GPL teacher scores, mixing) into a
:class:`~rankstack.recipes.reranker_fit.TrainingData`, so ``adapt`` trains with the reranker recipe's
own loop: the held-back synthetic queries are its validation queries, BM25 its first stage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rankstack.errors import InputError
from rankstack.synth.records import SyntheticQuery
from rankstack.synth.training import SyntheticLabels

__all__ = ["Prepared", "build_training_data", "heldout_scores"]

log = logging.getLogger(__name__)

HELDOUT_DEPTH = 30
HELDOUT_MEASURES = ("RR@10", "nDCG@10", "R@30")


@dataclass
class Prepared:
    """Training data for :func:`rankstack.recipes.reranker.run` plus what the report needs."""

    labels: SyntheticLabels
    data: Any  # reranker_fit.TrainingData
    loss: Any  # None: the config's loss; else GPL's MarginMSEMix
    after_filter: Callable[[list[Any]], list[Any]] | None
    synthetic_train: int
    real_queries: int
    negatives: dict[str, list[str]]
    collection: Any = None  # what training reads texts from: the collection, or a PositiveTexts view of it
    own_positives: int = 0  # training queries whose positive is the source without the query (ICT)
    synthetic_val: list[str] = field(default_factory=list)  # held-back synthetic queries (the report's check)
    real_val: list[str] = field(default_factory=list)  # --real-heldout: judged queries validated on instead

    def summary(self) -> dict[str, Any]:
        return {"synthetic_queries": len(self.labels), "synthetic_train": self.synthetic_train,
                "heldout": len(self.synthetic_val), "real_heldout": len(self.real_val),
                "real_queries": self.real_queries, "groups": len(self.data.groups),
                "dropped": self.labels.dropped, "generators": self.labels.generators,
                "own_positive_texts": self.own_positives}


class PositiveTexts:
    """A collection view whose ``doc_texts`` also answers the texts of synthetic positives.

    Inverse cloze task (Lee et al., ACL 2019): the query is a sentence of the document and the
    positive is *the rest* of it, or the model learns to spot a copied sentence instead of relevance.
    Each such positive gets an id of its own (``DOC#ict:QID``); everything else is the collection's.
    """

    def __init__(self, collection: Any, texts: dict[str, str]) -> None:
        self._collection, self._texts = collection, texts

    def doc_texts(self, docids: Sequence[str]) -> list[str]:
        ids = list(docids)
        real = [d for d in ids if d not in self._texts]
        found = dict(zip(real, self._collection.doc_texts(real))) if real else {}
        return [self._texts[d] if d in self._texts else found[d] for d in ids]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)


def _own_positives(records: Sequence[SyntheticQuery], train_q: Sequence[str], qrels: Any,
                   docs: Any) -> tuple[Any, dict[str, str]]:
    """Qrels where each training ICT query's positive is its source minus the query sentence.

    The source document itself stays judged (grade 0) so that it is never mined as a negative.
    """
    from rankstack.types import Qrels

    by_qid = {r.qid: r for r in records}
    judged = qrels.to_dict()
    texts: dict[str, str] = {}
    for qid in train_q:
        rec = by_qid.get(qid)
        rest = rec.extra.get("doc_text") if rec is not None else None
        if not isinstance(rest, str) or not rest.strip():
            continue
        pseudo = f"{rec.doc_id}#ict:{qid}"
        if pseudo in docs:
            continue
        texts[pseudo] = rest.strip()
        judged[qid] = {pseudo: 1, rec.doc_id: 0}
    return (Qrels.from_dict(judged, name=qrels.name) if texts else qrels), texts


def _first_stage_runs(config: Any, collection: Any, queries: Any) -> dict[str, Any]:
    from rankstack.recipes.adapt import negative_sources
    from rankstack.train.negatives import first_stage_run

    depth = max(config.negative_depth, HELDOUT_DEPTH)
    runs = {}
    for name in ["bm25"] + [n for n in negative_sources(config.negatives) if n != "bm25"]:
        log.info("first stage %s over %d queries (top %d)", name, len(queries), depth)
        runs[name] = first_stage_run(collection, queries, name, k=depth, cache_dir=config.cache_dir)
    return runs


def build_training_data(config: Any, collection: Any, records: Sequence[SyntheticQuery],
                        source: str | Path | None = None, progress: bool | None = False) -> Prepared:
    """Labels from ``records`` (source document = positive), a held-back slice, mined negatives, groups.

    ``config`` is an :class:`~rankstack.recipes.adapt.AdaptConfig`. Real judgements of
    ``config.real_split`` join the training side; with ``config.real_heldout`` a seeded slice of them is
    held back and becomes the validation set (the synthetic held-back slice is then only reported).
    """
    from rankstack.recipes.adapt import negative_sources
    from rankstack.recipes.reranker_data import build_groups, split_queries
    from rankstack.recipes.reranker_fit import TrainingData
    from rankstack.synth.training import labels_from_synthetic, merge_labels, mine_negatives

    docs = collection.documents()
    labels = labels_from_synthetic(records, docs, source=source)
    if len(labels) <= config.heldout:
        raise InputError(f"{len(labels)} synthetic queries cannot spare {config.heldout} for validation",
                         path=source, fix="generate more (--max-docs) or hold back fewer (--heldout)")
    train_q, val_q = split_queries(list(labels.queries.qids), config.heldout, seed=config.seed)
    synthetic_train = len(train_q)
    queries = labels.queries
    qrels, own_texts = _own_positives(records, train_q, labels.qrels, docs)
    synthetic_val, real_val = list(val_q), []
    real = 0
    if config.real_split:
        real_queries = collection.queries(config.real_split)
        real_qrels = collection.qrels(config.real_split)
        real_queries = real_queries.subset(real_qrels.query_ids)
        queries, qrels = merge_labels([(labels.queries, qrels), (real_queries, real_qrels)])
        real_train = list(real_queries.qids)
        if config.real_heldout:
            if config.real_heldout >= len(real_train):
                raise InputError(f"--real-heldout {config.real_heldout}: the {config.real_split!r} split has only "
                                 f"{len(real_train)} judged queries", path=collection.path,
                                 fix="hold back fewer (a tenth is usual)")
            real_train, real_val = split_queries(real_train, config.real_heldout, seed=config.seed)
            val_q = real_val
        train_q = train_q + real_train
        real = len(real_train)
    runs = _first_stage_runs(config, collection, queries)
    sources = {n: runs[n] for n in negative_sources(config.negatives)}
    train_queries = queries.subset(train_q)
    negatives = mine_negatives(train_queries, qrels, sources, config.n_negatives, depth=config.negative_depth,
                               all_docids=list(docs), seed=config.seed)
    groups = build_groups(train_queries, qrels, negatives, first_stage=runs["bm25"])
    if not groups:
        raise InputError("no training group could be built from the synthetic queries", path=source,
                         fix="check that the queries name documents of this collection")
    log.info("%d synthetic (+%d real) training queries, %d held back (%s), %d groups", synthetic_train, real,
             len(val_q), "judged" if real_val else "synthetic", len(groups))
    data = TrainingData(queries=queries, qrels=qrels, train_q=train_q, val_q=val_q, fs_run=runs["bm25"],
                        groups=groups, trainer_epochs=config.epochs,
                        fs_depth=max(config.negative_depth, HELDOUT_DEPTH))
    view = PositiveTexts(collection, own_texts) if own_texts else collection
    loss, after = _gpl(config, view, queries, progress=bool(progress)) if config.teacher else (None, None)
    return Prepared(labels, data, loss, after, synthetic_train, real, negatives, view, len(own_texts),
                    synthetic_val=synthetic_val, real_val=real_val)


def _gpl(config: Any, collection: Any, queries: Any,
         progress: bool = False) -> tuple[Any, Callable[[list[Any]], list[Any]]]:
    """GPL (Wang et al. 2022): the teacher scores every group item after the false-negative filter.

    The scores are cached by content (teacher fingerprint, precision, max length, the pairs' texts:
    :func:`~rankstack.recipes.student_teacher.cached_teacher_scores`), so a re-run over the same pairs
    (another base model, e.g. a smaller student, or another learning rate) does not pay minutes of
    teacher scoring again.
    """
    from rankstack.recipes.reranker import loss_spec
    from rankstack.recipes.reranker_data import DistillationMix, attach_teacher_scores
    from rankstack.recipes.student_teacher import cached_teacher_scores
    from rankstack.rerank.cross_encoder import CrossEncoderReranker
    from rankstack.storage import fingerprint
    from rankstack.synth.training import teacher_run

    teacher = CrossEncoderReranker(config.teacher, documents=collection, precision=config.precision,
                                   threads=config.threads, progress=progress)
    loss = DistillationMix(loss_spec(config.loss), config.gpl_weight, kd="margin_mse")

    def attach(groups: list[Any]) -> list[Any]:
        candidates: dict[str, list[str]] = {}
        for g in groups:
            candidates.setdefault(g.qid, []).extend(g.docids)
        log.info("GPL: teacher %s scores %d pairs", config.teacher, sum(len(g) for g in groups))
        teacher_fp = fingerprint(config.teacher)

        def score(q: list[str], d: list[str]) -> Any:
            return cached_teacher_scores(teacher, teacher_fp, q, d, config.cache_dir)[0]

        run = teacher_run(score, queries, candidates, collection.doc_texts)
        return attach_teacher_scores(groups, run)

    return loss, attach


def heldout_scores(config: Any, collection: Any, prepared: Prepared,
                   real: bool = False) -> dict[str, dict[str, float]]:
    """BM25's top 30 vs the saved model reranking it, on the held-back synthetic queries (``real``: on
    the held-back judged ones of ``--real-heldout``).

    Queries whose source document BM25 missed count as 0 for both (``missing="zero"``), so the
    numbers are the share of all held-back pairs, not only the easy ones.
    """
    from rankstack.evaluate import evaluate
    from rankstack.rerank.cross_encoder import CrossEncoderReranker

    data = prepared.data
    held = prepared.real_val if real else prepared.synthetic_val
    qrels = data.qrels.restrict(held)
    candidates = data.fs_run.restrict(held).with_queries(data.queries)
    first = candidates.top_k(HELDOUT_DEPTH)
    model = CrossEncoderReranker(str(config.out), documents=collection, precision=config.precision,
                                 threads=config.threads, depth=HELDOUT_DEPTH)
    # the whole first-stage list goes in: a model with the score in its input normalises it over the
    # depth it was trained on (first_score_depth); only the top 30 is rescored and kept
    reranked = model(candidates).top_k(HELDOUT_DEPTH)
    out = {}
    for name, run in (("bm25", first), ("adapted", reranked)):
        out[name] = {m: round(float(v), 6) for m, v in
                     evaluate(run, qrels, list(HELDOUT_MEASURES), missing="zero").mean.items()}
    return out
