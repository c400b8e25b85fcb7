"""Pick the cross-encoder's inference path by measurement (``rankstack rerank --precision auto``).

Why: the issue "Fast on any CPU" -- bf16 is ~2x on an AMX Xeon and slower than fp32 on an AVX2
EPYC; int8 and ONNX Runtime's fused kernels help on both, by amounts no flag predicts. So a few
hundred real pairs are scored by every candidate path (:func:`rankstack.encode.paths.candidate_paths`)
and :func:`rankstack.encode.calibrate.calibrate` keeps the fastest whose scores correlate >= 0.999
(Pearson) with fp32 and, when the pairs come with judgements, whose nDCG@10 is within 0.002 of
fp32's. The decision is cached per model weights, CPU, threads, max length and batch size.

Which pairs: :func:`calibration_pairs` takes the top ``per_query`` documents of seeded queries of a
run until ``pairs`` are collected; the recipe passes a first-stage run of held-out *training*
queries (never the test split) with their qrels, or the run being reranked when none exist. A model
trained with the first-stage score in its input (Askari et al., ECIR 2023) is calibrated on the inputs
it reranks: each pair keeps its first-stage score, normalised as reranking does, and the query text
carries it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.encode.calibrate import Decision, calibrate, decision_key, load_decision, save_decision
from rankstack.encode.onnx_export import weights_fingerprint
from rankstack.encode.paths import candidate_paths
from rankstack.errors import InputError
from rankstack.types import Qrels, Run

__all__ = ["CalibrationPairs", "calibration_pairs", "calibrate_reranker", "KIND"]

log = logging.getLogger(__name__)

KIND = "reranker"


class CalibrationPairs:
    """Aligned pair texts plus their (qid, docid) so a quality measure can be computed."""

    def __init__(self, qids: Sequence[str], docids: Sequence[str], query_texts: Sequence[str],
                 doc_texts: Sequence[str], qrels: Qrels | None = None,
                 first_scores: Sequence[float] | None = None) -> None:
        self.qids, self.docids = np.asarray(qids, dtype=str), np.asarray(docids, dtype=str)
        self.query_texts, self.doc_texts = list(query_texts), list(doc_texts)
        self.qrels = qrels
        # each pair's first-stage score in [0, 1] (see normalised_first_scores), for score-in-input models
        self.first_scores = None if first_scores is None else np.asarray(first_scores, dtype=np.float64)
        if not len(self.qids) == len(self.docids) == len(self.query_texts) == len(self.doc_texts):
            raise InputError("calibration pairs: qids, docids and texts differ in length")
        if self.first_scores is not None and len(self.first_scores) != len(self.qids):
            raise InputError("calibration pairs: first-stage scores and pairs differ in length")
        if not len(self.qids):
            raise InputError("calibration needs at least one pair", fix="rerank a non-empty run")

    def __len__(self) -> int:
        return len(self.qids)

    def ndcg10(self, scores: np.ndarray) -> float:
        from rankstack.evaluate import evaluate

        run = Run(self.qids, self.docids, np.asarray(scores, dtype=np.float64), name="calibration")
        return float(evaluate(run, self.qrels, "nDCG@10").mean["nDCG@10"])


def calibration_pairs(run: Run, doc_texts: Any, qrels: Qrels | None = None, pairs: int = 300, per_query: int = 20,
                      seed: int = 0, first_score_depth: int | None = None) -> CalibrationPairs:
    """Up to ``pairs`` pairs: the top ``per_query`` of seeded-shuffled queries of ``run`` (which must carry
    its queries' texts). ``doc_texts(docids) -> texts``. With ``qrels``, only judged queries are used.
    ``first_score_depth``: also keep each pair's run score min-max normalised over its query's top
    ``first_score_depth`` (a score-in-input model's depth), as reranking would."""
    from rankstack.rerank.base import normalised_first_scores

    if run.queries is None:
        raise InputError("calibration: the run carries no query texts", fix="attach them with run.with_queries(...)")
    if isinstance(pairs, bool) or not isinstance(pairs, int) or pairs < 1:
        raise InputError(f"calibration pairs must be a positive integer, got {pairs!r}")
    ranked = {q: (d, s) for q, d, s in run.groups()}
    groups = {q: d[:per_query] for q, (d, _) in ranked.items()}
    qids = sorted(groups)
    if qrels is not None:
        judged = set(qrels.query_ids)
        qids = [q for q in qids if q in judged]
    order = np.random.default_rng(seed).permutation(len(qids))
    pq, pd_, first = [], [], []
    for i in order:
        q = qids[i]
        take = groups[q][: pairs - len(pq)]
        pq += [q] * len(take)
        pd_ += [str(d) for d in take]
        first += list(normalised_first_scores(ranked[q][1], len(take), first_score_depth))
        if len(pq) >= pairs:
            break
    texts = doc_texts(pd_)
    return CalibrationPairs(pq, pd_, [run.queries[q] for q in pq], texts,
                            qrels.restrict(set(pq)) if qrels is not None else None,
                            first_scores=first if first_score_depth else None)


def calibrate_reranker(model: str | os.PathLike[str], pairs: CalibrationPairs, *, max_length: int | None = None,
                       batch_size: int = 16, threads: int | None = None, cache_dir: str | Path = ".cache/rankstack",
                       paths: Sequence[str] | None = None, rounds: int = 2, force: bool = False) -> Decision:
    """The measured decision for ``model`` on this CPU (cached; ``force`` measures again)."""
    from rankstack.rerank.cross_encoder import PRECISIONS, CrossEncoderReranker

    def reranker(path: str) -> CrossEncoderReranker:
        return CrossEncoderReranker(model, precision=path, max_length=max_length, batch_size=batch_size,
                                    threads=threads, cache_dir=cache_dir)

    ref = reranker("fp32")
    query_texts = pairs.query_texts
    if ref.first_score_in_input:
        if pairs.first_scores is None:
            raise InputError(f"the model at {model} reads the first-stage score in its input, but the calibration "
                             "pairs carry none", fix="build them with calibration_pairs(..., first_score_depth="
                                                     "the model's first_score_depth)")
        from rankstack.rerank.base import query_with_first_score

        query_texts = [query_with_first_score(q, x, ref.score_separator)
                       for q, x in zip(pairs.query_texts, pairs.first_scores)]
    todo = list(paths) if paths is not None else candidate_paths(PRECISIONS)
    bad = [p for p in todo if p not in PRECISIONS or p == "auto"]
    if bad:
        raise InputError(f"calibration: unknown path {bad[0]!r}", fix=f"choose among {', '.join(PRECISIONS[1:])}")
    if "fp32" not in todo:
        todo.insert(0, "fp32")
    from importlib.metadata import version

    libs = {n: version(n) for n in ("torch", "onnxruntime") if _installed(n)}
    key = decision_key(KIND, weights_fingerprint(ref.model), threads, max_length=ref.max_length,
                       batch_size=batch_size, paths=sorted(todo), libraries=libs,
                       judged=pairs.qrels is not None)
    if not force:
        cached = load_decision(cache_dir, KIND, key)
        if cached is not None:
            log.info("inference path from cache: %s", cached.path)
            return cached
    scorers: dict[str, CrossEncoderReranker] = {"fp32": ref}

    def warmup(path: str) -> None:
        if path not in scorers:
            scorers[path] = reranker(path)
        scorers[path].score(query_texts[:batch_size], pairs.doc_texts[:batch_size])

    runners = {p: (lambda p=p: scorers[p].score(query_texts, pairs.doc_texts)) for p in todo}
    judged = pairs.qrels is not None
    decision = calibrate(KIND, key, runners, items=len(pairs), threads=threads,
                         quality=pairs.ndcg10 if judged else None, quality_measure="nDCG@10" if judged else None,
                         rounds=rounds, warmup=warmup,
                         extra={"model": str(model), "max_length": ref.max_length, "batch_size": batch_size,
                                "judged_queries": len(set(pairs.qids.tolist())) if judged else 0})
    save_decision(cache_dir, decision)
    log.info("%s", decision.to_text())
    return decision


def _installed(name: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        version(name)
    except PackageNotFoundError:
        return False
    return True
