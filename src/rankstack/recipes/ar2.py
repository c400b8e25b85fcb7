"""AR2: a retriever (bi-encoder) and a ranker (cross-encoder) trained in alternation.

Zhang et al., "Adversarial Retriever-Ranker for Dense Text Retrieval" (ICLR 2022): the retriever
samples hard negatives for the ranker, the ranker learns to tell them from the positive, and the
ranker's softmax distribution over the retrieved list teaches the retriever (KL divergence), so the
retriever learns to retrieve what the ranker finds relevant -- a minimax game between the two. A CPU
sized version of the loop, per round:

1. negatives from the retriever: round 1 uses the prepared static negatives (from the untrained
   retriever itself with ``--negatives dense``), later rounds re-mine them from the current
   retriever's own index of the corpus (cached by a hash of its weights);
2. the ranker (the cross-encoder code of :mod:`rankstack.recipes.reranker_data`, started from
   ``--teacher`` or MiniLM with a fresh head) trains ``ar2_ranker_steps`` steps with ListNet over the
   positive and those negatives;
3. the ranker scores every candidate; the retriever trains on
   ``(1 - ar2_weight) * loss(judgements) + ar2_weight * KL(ranker || retriever)`` over the same lists
   (:class:`~rankstack.recipes.reranker_data.DistillationMix`; retriever scores are cosine x ``scale``,
   so the default judged loss is InfoNCE at temperature 1).

The paper's ranker regulariser and its large-batch GPU schedule are left out. The retriever is saved
as the bi-encoder at ``--out``; the ranker beside it in ``OUT/ranker`` (a cross-encoder folder).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from rankstack.recipes.biencoder import BiEncoderOutcome, BiEncoderTrainConfig, Prepared

__all__ = ["train_ar2", "train_ranker", "ranker_scores"]

log = logging.getLogger(__name__)


def train_ranker(config: BiEncoderTrainConfig, ranker: Any, groups: list[Any], coll: Any, budget: float | None,
                 progress: bool | None, fresh_head: bool) -> Any:
    """ListNet steps of the cross-encoder on the retriever's negatives (the shared Trainer)."""
    from rankstack.recipes.reranker_data import PairCollator, PairListModel, head_prefixes
    from rankstack.train.trainer import Trainer

    model = PairListModel(ranker.model)
    heads = {f"model.{p.rstrip('.')}": 10.0 for p in head_prefixes(ranker.model)} if fresh_head else None
    trainer = Trainer(model, "listnet", lr=config.lr, weight_decay=0.01, warmup_ratio=config.warmup_ratio,
                      max_steps=config.ar2_ranker_steps, batch_size=max(1, config.batch_size // 2),
                      precision=config.precision, seed=config.seed, param_groups=heads, num_threads=config.threads,
                      progress=progress, time_budget=budget)
    result = trainer.fit([g for g in groups if len(g.docids) > 1],
                         PairCollator(ranker.tokenizer, coll.doc_texts, max_length=ranker.max_length))
    ranker.model.eval()
    return result


def ranker_scores(ranker: Any, groups: list[Any], queries: Any, coll: Any) -> list[Any]:
    """Each group with the ranker's score of every candidate in ``meta["teacher"]``."""
    from rankstack.recipes.biencoder_data import attach_scores
    from rankstack.rerank.base import require_bare_pairs

    require_bare_pairs(ranker, "AR2's ranker")
    pairs = list(dict.fromkeys((g.qid, d) for g in groups for d in g.docids))
    text = queries.to_dict()
    unique = list(dict.fromkeys(d for _, d in pairs))
    doc = dict(zip(unique, coll.doc_texts(unique)))
    scores = ranker.score([text[q] for q, _ in pairs], [doc[d] for _, d in pairs])
    return attach_scores(groups, dict(zip(pairs, [float(s) for s in scores])))


def train_ar2(config: BiEncoderTrainConfig, prepared: Prepared, *, progress: bool | None = None) -> BiEncoderOutcome:
    """Alternate ranker and retriever training for ``ar2_rounds`` rounds; save both."""
    from rankstack.encode.biencoder_model import BiEncoderScorer, load_trainable
    from rankstack.recipes.biencoder import filter_groups
    from rankstack.recipes.biencoder_data import BiEncoderCollator, mine_dynamic
    from rankstack.recipes.biencoder_fit import config_dict, make_validator, save_model, trainer_for
    from rankstack.recipes.reranker import loss_spec
    from rankstack.recipes.reranker_data import DistillationMix, build_groups
    from rankstack.rerank.cross_encoder import CrossEncoderReranker, save_cross_encoder

    coll = prepared.collection
    model = load_trainable(config.base, threads=config.threads)
    ranker = CrossEncoderReranker(config.teacher or "minilm", documents=coll, precision=config.precision,
                                  threads=config.threads, max_length=None)
    fresh_head = config.teacher is None
    validate_fn = make_validator(config, prepared, model)
    scorer = BiEncoderScorer(model, scale=config.scale)
    loss = DistillationMix(loss_spec(config.loss_name), weight=config.ar2_weight)
    train_queries = prepared.queries.subset(prepared.train_q)
    groups, history, steps, best, over = prepared.groups, [], 0, None, False
    start = time.perf_counter()
    for r in range(config.ar2_rounds):
        left = None if config.budget_seconds is None else \
            max(1.0, (config.budget_seconds - (time.perf_counter() - start)) / (config.ar2_rounds - r))
        if r > 0:
            negs = mine_dynamic(model, coll, train_queries, prepared.qrels, config.n_negatives, config.depth,
                                config.skip, config.seed + r, config.cache_dir, config.doc_max_length,
                                config.precision, config.threads)
            groups = build_groups(train_queries, prepared.qrels, negs, first_stage=prepared.bm25)
            if config.fn_filter:
                groups = filter_groups(config, coll, groups)[0]
        ranked = train_ranker(config, ranker, groups, coll, None if left is None else left / 3, progress,
                              fresh_head and r == 0)
        history.extend({**h, "round": r, "phase": "ranker"} for h in ranked.history)
        groups = ranker_scores(ranker, groups, prepared.queries, coll)
        collate = BiEncoderCollator(model, coll.doc_texts, prepared.qrels.to_dict(), config.query_max_length,
                                    config.doc_max_length, in_batch=False, teacher=True, mix=True)
        trainer = trainer_for(config, scorer, loss, validate_fn, None if left is None else left * 2 / 3, progress)
        result = trainer.fit(groups, collate)
        history.extend({**h, "round": r, "phase": "retriever"} for h in result.history)
        steps += result.steps
        over = over or result.stopped_by_budget
        if result.best_value is not None and (best is None or result.best_value > best):
            best = result.best_value
    seconds = time.perf_counter() - start
    model.eval()
    training = {"config": config_dict(config), "steps": steps, "seconds": round(seconds, 1), "best_validation": best,
                "rounds": config.ar2_rounds}

    def write_ranker(tmp: Path) -> None:
        save_cross_encoder(ranker.model, ranker.tokenizer, tmp / "ranker", max_length=ranker.max_length,
                           base_model=str(config.teacher or "minilm"), training={"ar2": training})

    out = save_model(config, model, prepared, training, extra=write_ranker if config.out is not None else None)
    return BiEncoderOutcome("ar2", model, seconds, steps, best, over, out, details={"ranker": ranker},
                            history=[h for h in history if h.get("phase") == "retriever"] or history)
