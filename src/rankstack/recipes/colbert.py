"""Train a ColBERT late-interaction model (``rankstack train colbert``) with the shared Trainer and losses.

Set-up (ColBERT, Khattab & Zaharia, SIGIR 2020, §3.5, and ColBERTv2's in-batch + hard negatives,
Santhanam et al., NAACL 2022): each training example is a query with one judged positive and
``n_negatives`` BM25 hard negatives (top ``depth``, judged documents excluded, optionally filtered
by the shared false-negative filter with a dense MiniLM teacher); with ``in_batch`` every other
example's documents in the batch are extra negatives (except documents judged for the query).
Scores are MaxSim; the loss is any ``rankstack.losses`` spec, by default ``listnet`` (softmax
cross-entropy over the candidates = ColBERT's pairwise softmax loss when there is one negative).
The projection is new, so it gets ``proj_lr_mult`` times the base learning rate. ``freeze_encoder``
trains only the projection over the *cached* token states of the corpus (the same cache retrieval
uses), so a step costs a few small matrix products and the trained model's index needs no new
encoding pass -- what a shared 2-core CPU affords; full fine-tuning (ColBERT's set-up) runs the
encoder on every step. Validation: nDCG@10 of MaxSim reranking the BM25 top ``val_depth`` of
held-out *training* queries; the best state is kept. The model is saved as safetensors (encoder +
projection) + tokenizer + manifest, loadable by ``colbert(model=...)`` and ``colbert_rerank(model=...)``.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.errors import InputError
from rankstack.recipes.config import option

__all__ = ["ColBERTTrainConfig", "ColBERTTrainOutcome", "ColBERTCollator", "MaxSimModel", "StateTable", "run"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ColBERTTrainConfig:
    """Train ColBERT on a collection's judged training queries (defaults: the scifact study)."""

    collection: str = option("scifact", help="a BEIR folder or a name under the data root")
    data_root: str | None = option(None, help="folder holding collections by name")
    split: str = option("train", help="qrels split to train on")
    out: Path | None = option(None, help="model folder to write (none: do not save)")
    overwrite: bool = option(False, help="replace a ColBERT model already at --out")
    cache_dir: Path = option(Path(".cache/rankstack"), help="cache folder (BM25 index, dense vectors)")
    base: str = option("minilm", help="encoder to start from: 'minilm' or a transformers/ColBERT folder")
    dim: int = option(128, help="token vector dimension (projection output)")
    query_maxlen: int = option(32, help="query tokens incl. [MASK] augmentation")
    doc_maxlen: int = option(180, help="document tokens")
    loss: str = option("listnet", metavar="SPEC", help="ranking loss from rankstack.losses")
    n_negatives: int = option(1, help="BM25 hard negatives per positive")
    depth: int = option(30, help="BM25 depth negatives are drawn from")
    in_batch: bool = option(True, help="use the other examples' documents as negatives too")
    fn_filter: bool = option(False, help="drop negatives a dense MiniLM teacher scores above the positive")
    freeze_encoder: bool = option(False, help="train only the projection")
    epochs: int = option(1, help="passes over the training examples")
    max_steps: int | None = option(None, help="stop after this many optimiser steps")
    time_budget: float | None = option(None, help="minutes of training, then stop (validated, best kept)")
    batch_size: int = option(16, help="examples (queries) per step")
    lr: float = option(2e-5, help="AdamW learning rate of the encoder")
    proj_lr_mult: float = option(10.0, help="learning-rate multiplier of the new projection")
    warmup_ratio: float = option(0.1, help="linear warm-up fraction")
    validation: int = option(50, help="held-out training queries for validation (0: none)")
    val_depth: int = option(20, help="BM25 depth reranked for validation")
    validate_every: int | None = option(None, help="validate every N steps (none: each epoch)")
    patience: int | None = option(None, help="stop after N validations without improvement")
    precision: str = option("auto", choices=("auto", "fp32", "bf16"), help="autocast precision")
    threads: int | None = option(None, help="torch threads")
    seed: int = option(0, help="seed of the projection, sampling and batch order")

    def __post_init__(self) -> None:
        for name in ("dim", "n_negatives", "depth", "epochs", "batch_size", "val_depth"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.validation < 0:
            raise InputError(f"validation must be >= 0, got {self.validation!r}")
        if self.lr <= 0 or self.proj_lr_mult < 0:
            raise InputError("lr must be > 0 and proj_lr_mult >= 0")
        if self.time_budget is not None and self.time_budget <= 0:
            raise InputError(f"time_budget must be positive minutes, got {self.time_budget!r}")


@functools.cache
def maxsim_model_class() -> type:
    """The Trainer's scorer class, defined on first use so that importing this recipe (the CLI does, to
    build its flags) never imports torch."""
    import torch

    class MaxSimModel(torch.nn.Module):
        """The Trainer's scorer: ``forward(inputs) -> MaxSim scores [B, L]`` over the collated candidates."""

        def __init__(self, encoder: Any) -> None:
            super().__init__()
            self.encoder = encoder
            self.colbert = encoder.module

        def forward(self, inputs: dict[str, Any]) -> Any:
            from rankstack.encode.colbert import maxsim_torch

            if "q_states" in inputs:  # frozen encoder: cached token states, only the projection runs
                q, d = self.colbert.project(inputs["q_states"]), self.colbert.project(inputs["d_states"])
            else:
                q = self.colbert.project(self.colbert.states(inputs["q"]))
                d = self.colbert.project(self.colbert.states(inputs["d"]))
            scores = maxsim_torch(q, d, inputs["d_mask"])  # [B, N] every query against every document
            if inputs.get("own") is not None:              # no in-batch negatives: each query's own candidates
                scores = scores.gather(1, inputs["own"])
            return scores

    return MaxSimModel


def MaxSimModel(encoder: Any) -> Any:  # noqa: N802 - reads as the class it builds
    """A MaxSim scorer over ``encoder`` for the Trainer (see :func:`maxsim_model_class`)."""
    return maxsim_model_class()(encoder)


@dataclass
class ColBERTCollator:
    """``collate(groups) -> (inputs, labels, mask, None)``: tokenised queries and documents, and labels
    over all documents of the batch (or only each query's own with ``in_batch=False``)."""

    encoder: Any
    doc_texts: Any
    judged: dict[str, dict[str, int]]
    in_batch: bool = True
    states: Any = None  # frozen encoder: a StateTable of cached query and document token states

    def __call__(self, groups: list[Any]) -> tuple[dict[str, Any], Any, Any, None]:
        import torch

        docids = [d for g in groups for d in g.docids]
        if self.states is not None:
            d_states, d_mask = self.states.docs(docids)
            inputs = {"q_states": self.states.queries([g.qid for g in groups]), "d_states": d_states,
                      "d_mask": d_mask, "own": None}
        else:
            q = self.encoder.tokenize([g.query for g in groups], is_query=True)
            d = self.encoder.tokenize(self.doc_texts(docids), is_query=False)
            inputs = {"q": q, "d": d, "d_mask": self.encoder.doc_token_mask(d), "own": None}
        width = max(len(g.docids) for g in groups)
        if self.in_batch:
            labels = torch.zeros(len(groups), len(docids))
            mask = torch.ones(len(groups), len(docids), dtype=torch.bool)
            start = 0
            for i, g in enumerate(groups):
                judged = self.judged.get(g.qid, {})
                for j, doc in enumerate(docids):  # another example's document judged for this query: not a negative
                    if doc in judged and not start <= j < start + len(g.docids):
                        mask[i, j] = False
                labels[i, start:start + len(g.docids)] = torch.tensor(g.labels, dtype=torch.float32)
                start += len(g.docids)
            return inputs, labels, mask, None
        own = torch.zeros(len(groups), width, dtype=torch.long)
        labels = torch.zeros(len(groups), width)
        mask = torch.zeros(len(groups), width, dtype=torch.bool)
        start = 0
        for i, g in enumerate(groups):
            n = len(g.docids)
            own[i, :n] = torch.arange(start, start + n)
            labels[i, :n] = torch.tensor(g.labels, dtype=torch.float32)
            mask[i, :n] = True
            start += n
        inputs["own"] = own
        return inputs, labels, mask, None


@dataclass
class ColBERTTrainOutcome:
    encoder: Any
    seconds: float
    steps: int
    best_validation: float | None
    stopped_by_budget: bool = False
    out: Path | None = None
    history: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def to_text(self) -> str:
        val = "-" if self.best_validation is None else f"{self.best_validation:.4f}"
        return (f"trained ColBERT: {self.steps} steps in {self.seconds / 60:.1f} min"
                f"{' (time budget reached)' if self.stopped_by_budget else ''}; best validation nDCG@10 {val}"
                + (f"; saved to {self.out}" if self.out else ""))


class StateTable:
    """Cached encoder token states of the corpus (flat, by document) and of the training queries, for
    training the projection over a frozen encoder without running it again."""

    def __init__(self, docids: list[str], states: np.ndarray, offsets: np.ndarray, qids: list[str],
                 q_states: np.ndarray) -> None:
        self.row = {d: i for i, d in enumerate(docids)}
        self.states, self.offsets = states, offsets
        self.qrow = {q: i for i, q in enumerate(qids)}
        self.q_states = q_states

    def queries(self, qids: list[str]) -> Any:
        import torch

        return torch.from_numpy(self.q_states[[self.qrow[q] for q in qids]])

    def doc_arrays(self, docids: list[str]) -> list[np.ndarray]:
        rows = [self.row[d] for d in docids]
        return [self.states[self.offsets[r]:self.offsets[r + 1]] for r in rows]

    def docs(self, docids: list[str]) -> tuple[Any, Any]:
        import torch

        parts = self.doc_arrays(docids)
        width = max(1, max(len(p) for p in parts))
        out = np.zeros((len(parts), width, self.states.shape[1]), np.float32)
        mask = np.zeros((len(parts), width), bool)
        for i, p in enumerate(parts):
            out[i, :len(p)], mask[i, :len(p)] = p, True
        return torch.from_numpy(out), torch.from_numpy(mask)


def _validator(encoder: Any, queries: Any, qrels: Any, run: Any, doc_texts: Any, states: StateTable | None) -> Any:
    """nDCG@10 of MaxSim reranking ``run`` with the current weights (cached states when frozen)."""
    from rankstack.encode.colbert import maxsim_flat, project_states
    from rankstack.evaluate import evaluate
    from rankstack.types import Run

    docids = sorted({str(d) for d in run.docids.tolist()})
    texts = doc_texts(docids)

    def validate(_model: Any) -> float:
        where = {d: i for i, d in enumerate(docids)}
        if states is not None:
            w = encoder.projection_weight()
            parts = states.doc_arrays(docids)
            vectors = project_states(np.concatenate(parts), w)
            offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])])
            qs = states.queries(list(queries.qids)).numpy()
            qv = project_states(qs.reshape(-1, qs.shape[-1]), w).reshape(len(qs), qs.shape[1], -1)
            qvecs = dict(zip(queries.qids, qv))
        else:
            vectors, offsets = encoder.encode_docs(texts, progress=False)
            qvecs = dict(zip(queries.qids, encoder.encode_queries(list(queries.texts))))
        scores = np.empty(len(run), dtype=np.float64)
        for i, (q, d) in enumerate(zip(run.qids.tolist(), run.docids.tolist())):
            r = where[str(d)]
            scores[i] = maxsim_flat(qvecs[q], vectors[offsets[r]:offsets[r + 1]], np.array([0, offsets[r + 1] - offsets[r]]))[0]
        reranked = Run(run.qids, run.docids, scores, name="colbert-val", queries=run.queries)
        return float(evaluate(reranked, qrels, ["nDCG@10"]).mean["nDCG@10"])

    return validate


def run(config: ColBERTTrainConfig) -> ColBERTTrainOutcome:
    """Mine negatives, train with the shared Trainer, save to ``config.out`` if given."""
    from rankstack.data.beir import Collection, default_data_root
    from rankstack.encode.colbert import ColBERTEncoder
    from rankstack.recipes.reranker_data import build_groups, split_queries
    from rankstack.storage import check_output_folder
    from rankstack.train.negatives import FalseNegativeFilter, DenseTeacher, first_stage_run, sample_negatives
    from rankstack.train.trainer import Trainer

    coll = Collection(config.collection, data_root=config.data_root)
    inputs = (coll.path, Path(config.data_root) if config.data_root else default_data_root())
    if config.out is not None:  # refuse a bad --out before minutes of work
        check_output_folder(config.out, overwrite=config.overwrite, inputs=inputs)
    queries, qrels = coll.queries(config.split), coll.qrels(config.split)
    judged_qids = [q for q in queries.qids if q in set(qrels.to_dict())]
    train_q, val_q = split_queries(judged_qids, config.validation, seed=config.seed) if config.validation \
        else (judged_qids, [])
    depth = max(config.depth, config.val_depth)
    bm25 = first_stage_run(coll, queries, "bm25", k=depth, cache_dir=config.cache_dir)
    train_queries = _subset(queries, train_q)
    negs = sample_negatives(train_queries, qrels, config.n_negatives, "bm25", run=bm25, depth=config.depth,
                            seed=config.seed)
    groups = build_groups(train_queries, qrels, negs, first_stage=bm25)
    if not groups:
        raise InputError(f"no {config.split} query of {config.collection} has a judged document")
    if config.fn_filter:
        teacher = DenseTeacher("minilm", collection=coll, cache_dir=config.cache_dir)
        groups, report = FalseNegativeFilter(teacher).apply(groups, coll.doc_texts)
        log.info("%s", report)
    encoder = ColBERTEncoder(config.base, dim=config.dim, query_maxlen=config.query_maxlen,
                             doc_maxlen=config.doc_maxlen, seed=config.seed, threads=config.threads,
                             precision=config.precision)
    table = None
    if config.freeze_encoder:
        from rankstack.encode.colbert import cached_doc_states

        for p in encoder.module.bert.parameters():
            p.requires_grad_(False)
        docs = list(coll.corpus())
        d_states, offsets = cached_doc_states(encoder, [d.contents for d in docs], [d.docid for d in docs],
                                              config.cache_dir)
        table = StateTable([d.docid for d in docs], d_states, offsets, list(queries.qids),
                           encoder.query_states(list(queries.texts)))
    model = MaxSimModel(encoder)
    validate_fn = None
    if val_q:
        vq = _subset(queries, val_q)
        val_run = bm25.top_k(config.val_depth)
        keep = np.isin(val_run.qids, np.asarray(val_q, dtype=str))
        val_run = val_run.replace(qids=val_run.qids[keep], docids=val_run.docids[keep],
                                  scores=val_run.scores[keep]).with_queries(vq)
        validate_fn = _validator(encoder, vq, qrels, val_run, coll.doc_texts, table)
    trainer = Trainer(model, config.loss, lr=config.lr, weight_decay=0.01, warmup_ratio=config.warmup_ratio,
                      epochs=config.epochs, max_steps=config.max_steps, batch_size=config.batch_size,
                      precision=config.precision, seed=config.seed, validate_fn=validate_fn,
                      validate_every=config.validate_every, patience=config.patience,
                      param_groups={"colbert.linear": config.proj_lr_mult}, num_threads=config.threads,
                      time_budget=None if config.time_budget is None else config.time_budget * 60)
    collate = ColBERTCollator(encoder, coll.doc_texts, qrels.to_dict(), in_batch=config.in_batch, states=table)
    start = time.perf_counter()
    result = trainer.fit(groups, collate)
    seconds = time.perf_counter() - start
    encoder.module.eval()
    outcome = ColBERTTrainOutcome(encoder, seconds, result.steps, result.best_value, result.stopped_by_budget,
                                  history=result.history)
    if config.out is not None:
        training = {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
                    "steps": result.steps, "seconds": round(seconds, 1), "best_validation": result.best_value,
                    "examples": len(groups), "trainer": trainer.config()}
        encoder.save(config.out, training=training, overwrite=config.overwrite, inputs=inputs)
        outcome.out = Path(config.out)
    return outcome


def _subset(queries: Any, qids: list[str]) -> Any:
    from rankstack.types import Queries

    keep = set(qids)
    pairs = [(q, t) for q, t in zip(queries.qids, queries.texts) if q in keep]
    return Queries(tuple(q for q, _ in pairs), tuple(t for _, t in pairs))
