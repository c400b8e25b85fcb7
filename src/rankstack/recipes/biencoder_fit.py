"""The fit of :func:`rankstack.recipes.biencoder.run` for ``infonce``, ``margin-mse`` and ``listwise-kl``.

Rounds: round 1 trains on the static hard negatives; each of ``dynamic_rounds`` further rounds first
re-mines negatives from the current model's own index of the corpus (Zhan et al., SIGIR 2021: static
negatives as in STAR, then dynamic ones as the model changes), re-applies the false-negative filter and,
for distillation, scores the new pairs with the teacher (cached). The time budget is shared equally
between rounds; the Trainer keeps each round's best validated state.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rankstack.recipes.biencoder import BiEncoderOutcome, BiEncoderTrainConfig, Prepared

__all__ = ["train_biencoder", "make_validator", "distil_groups", "trainer_for", "save_model", "config_dict"]

log = logging.getLogger(__name__)


def config_dict(config: BiEncoderTrainConfig) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}


def make_validator(config: BiEncoderTrainConfig, prepared: Prepared, model: Any, doc_vectors: Any = None) -> Any:
    """A :class:`DenseValidator` over the held-out training queries (None without any)."""
    import numpy as np

    from rankstack.recipes.biencoder_data import DenseValidator

    if not prepared.val_q:
        return None
    vq = prepared.queries.subset(prepared.val_q)
    run = prepared.bm25.top_k(config.val_depth)
    keep = np.isin(run.qids, np.asarray(prepared.val_q, dtype=str))
    run = run.replace(qids=run.qids[keep], docids=run.docids[keep], scores=run.scores[keep]).with_queries(vq)
    return DenseValidator(model, vq, prepared.qrels, run, prepared.collection.doc_texts, config.doc_max_length,
                          precision=config.precision, threads=config.threads, doc_vectors=doc_vectors)


def teacher_model(config: BiEncoderTrainConfig, coll: Any) -> tuple[Any, str]:
    """The cross-encoder teacher and an id of its weights (its manifest checksum, else its files')."""
    from rankstack.encode.base import fingerprint_files
    from rankstack.rerank.cross_encoder import CrossEncoderReranker

    teacher = CrossEncoderReranker(config.teacher, documents=coll, precision=config.precision,
                                   threads=config.threads, progress=True)
    if teacher.manifest is not None:
        return teacher, str(teacher.manifest.get("manifest_sha256"))
    folder = Path(str(config.teacher))
    files = [p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin") or p.name == "config.json"]
    return teacher, fingerprint_files(files)


def distil_groups(groups: list[Any], teacher: Any, teacher_id: str, prepared: Prepared,
                  cache_dir: Path | None) -> list[Any]:
    """Groups with the teacher's score of every candidate in ``meta["teacher"]`` (scored once, cached)."""
    from rankstack.recipes.biencoder_data import attach_scores, teacher_scores

    pairs = list(dict.fromkeys((g.qid, d) for g in groups for d in g.docids))
    scores = teacher_scores(teacher, teacher_id, pairs, prepared.queries.to_dict(), prepared.collection.doc_texts,
                            cache_dir)
    return attach_scores(groups, dict(zip(pairs, scores.tolist())))


def trainer_for(config: BiEncoderTrainConfig, scorer: Any, loss: Any, validate_fn: Any, budget: float | None,
                progress: bool | None) -> Any:
    from rankstack.train.trainer import Trainer

    return Trainer(scorer, loss, lr=config.lr, weight_decay=0.01, warmup_ratio=config.warmup_ratio,
                   epochs=config.epochs, max_steps=config.max_steps, batch_size=config.batch_size,
                   precision=config.precision, seed=config.seed, validate_fn=validate_fn,
                   validate_every=config.validate_every, patience=config.patience if validate_fn else None,
                   num_threads=config.threads, progress=progress, time_budget=budget)


def save_model(config: BiEncoderTrainConfig, model: Any, prepared: Prepared, training: dict[str, Any],
               extra: Any = None) -> Path | None:
    from rankstack.encode.biencoder_model import save_biencoder

    if config.out is None:
        return None
    save_biencoder(model, config.out, training=training, params={"method": config.method, "base": config.base},
                   overwrite=config.overwrite, inputs=prepared.inputs, extra=extra)
    return Path(config.out)


def train_biencoder(config: BiEncoderTrainConfig, prepared: Prepared, *, progress: bool | None = None) -> BiEncoderOutcome:
    """InfoNCE fine-tuning or cross-encoder distillation, in ``1 + dynamic_rounds`` rounds."""
    from rankstack.encode.biencoder_model import BiEncoderScorer, load_trainable
    from rankstack.recipes.biencoder_data import BiEncoderCollator, mine_dynamic
    from rankstack.recipes.biencoder import filter_groups
    from rankstack.recipes.reranker import loss_spec
    from rankstack.recipes.reranker_data import build_groups

    distil = config.method in ("margin-mse", "listwise-kl")
    model = load_trainable(config.base, threads=config.threads)
    teacher, teacher_id = teacher_model(config, prepared.collection) if distil else (None, "")
    groups = prepared.groups
    if distil:
        groups = distil_groups(groups, teacher, teacher_id, prepared, config.cache_dir)
    fixed, doc_encoder_id, doc_vectors = None, None, None
    if config.freeze_documents:
        from rankstack.recipes.adore import fixed_document_index

        fixed, doc_encoder_id = fixed_document_index(config, prepared.collection)
        doc_vectors = {d: fixed.vectors[i] for d, i in fixed.row.items()}
    validate_fn = make_validator(config, prepared, model, doc_vectors=doc_vectors)
    scorer = BiEncoderScorer(model, scale=config.scale if distil else 1.0)
    rounds = 1 + config.dynamic_rounds
    budget = None if config.budget_seconds is None else config.budget_seconds / rounds
    train_queries = prepared.queries.subset(prepared.train_q)
    judged = prepared.qrels.to_dict()
    history: list[dict[str, Any]] = []
    steps, best, over, reports = 0, None, False, [prepared.filter_report]
    start = time.perf_counter()
    for r in range(rounds):
        if r > 0:
            negs = mine_dynamic(model, prepared.collection, train_queries, prepared.qrels, config.n_negatives,
                                config.depth, config.skip, config.seed + r, config.cache_dir,
                                config.doc_max_length, config.precision, config.threads)
            groups = build_groups(train_queries, prepared.qrels, negs, first_stage=prepared.bm25)
            if config.fn_filter:
                groups, report = filter_groups(config, prepared.collection, groups)
                reports.append(report)
            if distil:
                groups = distil_groups(groups, teacher, teacher_id, prepared, config.cache_dir)
        collate = BiEncoderCollator(model, prepared.collection.doc_texts, judged, config.query_max_length,
                                    config.doc_max_length, in_batch=config.in_batch and not distil, teacher=distil,
                                    fixed=fixed)
        trainer = trainer_for(config, scorer, loss_spec(config.loss_name), validate_fn, budget, progress)
        result = trainer.fit(groups, collate)
        history.extend({**h, "round": r} for h in result.history)
        steps += result.steps
        over = over or result.stopped_by_budget
        if result.best_value is not None and (best is None or result.best_value > best):
            best = result.best_value
        log.info("bi-encoder round %d/%d: %d steps, best validation %s", r + 1, rounds, result.steps,
                 result.best_value)
        trainer_config = trainer.config()
    seconds = time.perf_counter() - start
    model.eval()
    training = {"config": config_dict(config), "steps": steps, "seconds": round(seconds, 1), "best_validation": best,
                "examples": len(groups), "rounds": rounds, "trainer": trainer_config,
                "false_negative_filter": reports, "teacher_id": teacher_id or None, "doc_encoder": doc_encoder_id}
    extra = None
    if fixed is not None and config.out is not None:
        from rankstack.recipes.adore import index_writer

        extra = index_writer(config, fixed, doc_encoder_id)
    out = save_model(config, model, prepared, training, extra=extra)
    return BiEncoderOutcome(config.method, model, seconds, steps, best, over, out,
                            details={"rounds": rounds, "examples": len(groups), "filter": reports}, history=history)
