"""Cross-encoder training data (a helper of :mod:`rankstack.recipes.reranker`): query groups, a
collate function, a [B, L] scoring module, validation and the distillation mix.

A *group* is one query with its candidates: a positive and ``n`` mined negatives (the listwise
"localised contrastive estimation" set-up of "Rethink Training of BERT Rerankers in Multi-Stage
Retrieval Pipeline", Gao, Dai & Callan, ECIR 2021), or every judged document with its grade plus
negatives (graded lists). Any loss of :mod:`rankstack.losses` consumes the groups, because collate
returns ``(inputs, labels[B, L], mask[B, L], weights[B, L])`` for the shared Trainer.

Only real pairs are tokenised (padding slots of short groups cost nothing), and the scoring module
scatters the pair logits back into ``[B, L]``. Lives in ``recipes`` because it is specific to pair
rerankers (validation builds a :class:`~rankstack.rerank.cross_encoder.CrossEncoderReranker`); the
generic ``train`` package below it imports nothing from ``rerank``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rankstack import normalize
from rankstack.errors import InputError
from rankstack.rerank.base import query_with_first_score, score_separator
from rankstack.train.curriculum import Curriculum, group_easiness
from rankstack.types import Qrels, Queries, Run

__all__ = ["Group", "build_groups", "split_queries", "PairCollator", "PairListModel", "attach_easiness",
           "RerankValidator", "attach_teacher_scores", "DistillationMix", "head_prefixes", "set_attention_dropout",
           "freeze_bottom_layers", "transformer_blocks"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Group:
    """One query and its candidates. Item lists are aligned; ``weights`` are per-item loss weights."""

    qid: str
    query: str
    docids: list[str]
    labels: list[float]
    weights: list[float]
    first_ranks: list[int]  # 1-based first-stage rank, 0 = not retrieved
    first_scores: list[float]  # min-max normalised first-stage score in [0, 1], 0 when not retrieved
    easiness: float = 1.0  # curriculum easiness of the whole group
    meta: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def item_fields() -> tuple[str, ...]:
        return ("docids", "labels", "weights", "first_ranks", "first_scores")

    def __len__(self) -> int:
        return len(self.docids)


def split_queries(qids: Sequence[str], validation: int | float, seed: int = 0) -> tuple[list[str], list[str]]:
    """Hold out a seeded slice of the *training* queries for validation (never the test split)."""
    qids = list(qids)
    n_val = int(round(validation * len(qids))) if isinstance(validation, float) and validation < 1 else int(validation)
    if n_val < 0 or n_val >= len(qids):
        raise InputError(f"cannot hold out {n_val} of {len(qids)} training queries for validation",
                         fix="use a smaller --validation")
    perm = np.random.default_rng(seed).permutation(len(qids))
    val = sorted(qids[i] for i in perm[:n_val])
    val_set = set(val)
    return [q for q in qids if q not in val_set], val


def build_groups(queries: Queries, qrels: Qrels, negatives: dict[str, list[str]], first_stage: Run | None = None,
                 graded: bool = False, max_positives: int | None = None, min_relevance: int = 1) -> list[Group]:
    """Groups from judged positives and mined negatives.

    ``graded=False``: one group per positive: [positive, *negatives] with labels 1/0.
    ``graded=True``: one group per query: every judged document with its grade, then the negatives.
    ``first_stage`` supplies ranks/scores for curricula and teachers. Queries without a positive
    are skipped.
    """
    judged = qrels.to_dict()
    fs: dict[str, dict[str, tuple[int, float]]] = {}
    if first_stage is not None:
        for q, d, s in first_stage.groups():
            ns = normalize.minmax(s)
            fs[q] = {str(x): (i + 1, float(v)) for i, (x, v) in enumerate(zip(d, ns))}
    groups: list[Group] = []
    for qid, text in queries:
        docs = judged.get(qid, {})
        pos = [(d, r) for d, r in docs.items() if r >= min_relevance]
        if not pos:
            continue
        pos.sort(key=lambda x: (-x[1], x[0]))
        if max_positives is not None:
            pos = pos[:max_positives]
        negs = [d for d in negatives.get(qid, []) if d not in docs]
        info = fs.get(qid, {})
        lists: list[list[tuple[str, float]]]
        if graded:
            others = [(d, float(r)) for d, r in docs.items() if r < min_relevance]
            lists = [[(d, float(r)) for d, r in pos] + others + [(d, 0.0) for d in negs]]
        else:
            lists = [[(d, 1.0)] + [(d2, 0.0) for d2 in negs] for d, _ in pos]
        for items in lists:
            docids = [d for d, _ in items]
            labels = [lab for _, lab in items]
            ranks = [info.get(d, (0, 0.0))[0] for d in docids]
            scores = [info.get(d, (0, 0.0))[1] for d in docids]
            groups.append(Group(qid, text, docids, labels, [1.0] * len(items), ranks, scores))
    return groups


def attach_easiness(groups: list[Group], heuristic: str = "recip") -> list[Group]:
    """Set each group's curriculum easiness from its first-stage ranks (MacAvaney et al., 2020)."""
    return [dataclasses.replace(g, easiness=group_easiness(g.labels, g.first_ranks, g.first_scores, heuristic))
            for g in groups]


class PairCollator:
    """``collate(groups) -> (inputs, labels, mask, weights)`` for the shared Trainer.

    ``inputs`` holds the tokenised real pairs and their flat positions in ``[B, L]``. With a
    :class:`Curriculum`, each group's weights are multiplied by its curriculum weight at the current
    step; ``step_fn()`` returns the current optimisation step (default: the number of batches
    collated so far) and ``total_steps`` the planned total. ``first_score_in_input``: each pair's query
    text carries the item's first-stage score (``Group.first_scores``), written as the reranker writes
    it at inference (:func:`rankstack.rerank.base.query_with_first_score`).
    """

    def __init__(self, tokenizer: Any, doc_texts: Callable[[Sequence[str]], list[str]], max_length: int = 192,
                 curriculum: Curriculum | None = None, total_steps: int | None = None,
                 step_fn: Callable[[], int] | None = None, first_score_in_input: bool = False) -> None:
        self.tokenizer, self.doc_texts, self.max_length = tokenizer, doc_texts, max_length
        self.first_score_in_input = first_score_in_input
        self.separator = score_separator(tokenizer)
        self.curriculum, self.total_steps, self.step_fn = curriculum, total_steps, step_fn
        self.calls = 0
        self.last_curriculum_weights: np.ndarray | None = None
        self._cache: dict[str, str] = {}

    def _texts(self, docids: list[str]) -> list[str]:
        missing = [d for d in dict.fromkeys(docids) if d not in self._cache]
        if missing:
            self._cache.update(zip(missing, self.doc_texts(missing)))
        return [self._cache[d] for d in docids]

    def group_length(self, group: Group) -> int:
        """Tokens of the group's longest (query, document) pair after truncation: the key for length
        bucketing (a micro-batch is padded to its longest pair). Memoised per (query, document)."""
        memo = self.__dict__.setdefault("_lengths", {})
        missing = [d for d in dict.fromkeys(group.docids) if (group.query, d) not in memo]
        if missing:
            enc = self.tokenizer([group.query] * len(missing), self._texts(missing), truncation="longest_first",
                                 max_length=self.max_length, padding=False, return_attention_mask=False,
                                 return_token_type_ids=False)
            memo.update({(group.query, d): len(ids) for d, ids in zip(missing, enc["input_ids"])})
        return max(memo[(group.query, d)] for d in group.docids)

    def __call__(self, groups: Sequence[Group]) -> tuple[dict[str, Any], Any, Any, Any]:
        import torch

        if not groups:
            raise InputError("cannot collate an empty batch")
        B, L = len(groups), max(len(g) for g in groups)
        distill = "teacher" in groups[0].meta
        labels = torch.zeros(B, L, 2) if distill else torch.zeros(B, L)
        mask = torch.zeros(B, L, dtype=torch.bool)
        weights = torch.ones(B, L)
        q_texts, d_ids, flat = [], [], []
        for b, g in enumerate(groups):
            n = len(g)
            if distill:
                labels[b, :n, 0] = torch.tensor(g.labels, dtype=torch.float32)
                labels[b, :n, 1] = torch.tensor(g.meta["teacher"], dtype=torch.float32)
            else:
                labels[b, :n] = torch.tensor(g.labels, dtype=torch.float32)
            weights[b, :n] = torch.tensor(g.weights, dtype=torch.float32)
            mask[b, :n] = True
            if self.first_score_in_input:
                q_texts.extend(query_with_first_score(g.query, x, self.separator) for x in g.first_scores)
            else:
                q_texts.extend([g.query] * n)
            d_ids.extend(g.docids)
            flat.extend(b * L + j for j in range(n))
        if self.curriculum is not None:
            step = self.step_fn() if self.step_fn is not None else self.calls
            cw = self.curriculum.weights([g.easiness for g in groups], step, self.total_steps or 1)
            self.last_curriculum_weights = cw
            weights = weights * torch.tensor(cw, dtype=torch.float32)[:, None]
        self.calls += 1
        features = self.tokenizer(q_texts, self._texts(d_ids), truncation="longest_first",
                                  max_length=self.max_length, padding=True, return_tensors="pt")
        inputs = {"features": dict(features), "index": torch.tensor(flat, dtype=torch.long), "shape": (B, L)}
        return inputs, labels, mask, weights


class PairListModel:
    """Wrap a one-logit sequence classifier as ``forward(inputs) -> scores[B, L]`` (an nn.Module)."""

    def __new__(cls, model: Any) -> Any:
        import torch

        class _PairList(torch.nn.Module):
            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.model = inner

            def forward(self, inputs: dict[str, Any]) -> torch.Tensor:
                logits = self.model(**inputs["features"]).logits.reshape(-1)
                B, L = inputs["shape"]
                out = torch.zeros(B * L, dtype=logits.dtype, device=logits.device)
                out = out.index_copy(0, inputs["index"], logits)
                return out.view(B, L)

        return _PairList(model)


# ---------------------------------------------------------------------------------------------
# validation with the real evaluate()
class RerankValidator:
    """nDCG@10 (or any measure) of reranking a first-stage run on held-out *training* queries.

    Called by the Trainer's validation hook with the model being trained; it scores in eval mode with
    the same precision path as inference, so the number is the one ``rankstack rerank`` would give.
    """

    def __init__(self, model: Any, tokenizer: Any, first_stage: Run, qrels: Qrels, documents: Any,
                 max_length: int = 192, depth: int = 30, measure: str = "nDCG@10", precision: str = "auto",
                 batch_size: int = 64, first_score_in_input: bool = False,
                 first_score_depth: int | None = None) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.first_score_in_input, self.first_score_depth = first_score_in_input, first_score_depth
        self.first_stage, self.qrels, self.documents = first_stage, qrels, documents
        self.max_length, self.depth, self.measure = max_length, depth, measure
        self.precision, self.batch_size = precision, batch_size
        self.history: list[float] = []

    def reranker(self, **kw: Any) -> Any:
        from rankstack.rerank.cross_encoder import CrossEncoderReranker

        inner = getattr(self.model, "model", self.model)  # unwrap PairListModel
        return CrossEncoderReranker(documents=self.documents, max_length=self.max_length,
                                    batch_size=self.batch_size, precision=self.precision, depth=self.depth,
                                    first_score_in_input=self.first_score_in_input,
                                    first_score_depth=self.first_score_depth, _module=inner, _tokenizer=self.tokenizer, **kw)

    def __call__(self, *_: Any, **__: Any) -> float:
        from rankstack.evaluate import evaluate

        # With the score in the input, pass the whole first-stage list: the reranker normalises the
        # scores over its top first_score_depth, as the training groups were (only the top ``depth``
        # is rescored either way).
        candidates = self.first_stage if self.first_score_in_input else self.first_stage.top_k(self.depth)
        run = self.reranker()(candidates)
        value = evaluate(run, self.qrels, [self.measure]).mean[self.measure]
        self.history.append(value)
        log.info("validation %s = %.4f", self.measure, value)
        return value


def set_attention_dropout(model: Any, p: float) -> int:
    """Set the attention-probability dropout of every self-attention block to ``p``; returns how many.

    Why: with dropout on the attention probabilities, torch's scaled-dot-product attention on a CPU
    cannot use its fused kernel and materialises the [heads, L, L] matrix and its mask; at ``p=0``
    it runs fused (benchmarks/training.md). Hidden-state dropout is unchanged.
    """
    if not 0.0 <= p < 1.0:
        raise InputError(f"attention dropout must be in [0, 1), got {p!r}")
    n = 0
    for module in model.modules():
        drop = getattr(module, "dropout", None)
        if type(module).__name__.endswith("SelfAttention") and hasattr(drop, "p"):
            drop.p = float(p)
            n += 1
    if hasattr(getattr(model, "config", None), "attention_probs_dropout_prob"):
        model.config.attention_probs_dropout_prob = float(p)
    return n


def transformer_blocks(model: Any) -> tuple[Any, Any]:
    """``(encoder, ModuleList of transformer blocks)`` of a BERT-style sequence classifier."""
    encoder = getattr(getattr(model, "base_model", None), "encoder", None)
    layers = getattr(encoder, "layer", None)
    if layers is None:
        raise InputError(f"cannot find the transformer layers of a {type(model).__name__}",
                         fix="use a BERT-style cross-encoder (e.g. one trained by 'rankstack train reranker')")
    return encoder, layers


def freeze_bottom_layers(model: Any, n: int) -> int:
    """Freeze the embeddings and the bottom ``n`` transformer blocks of a BERT-style model; returns
    how many parameters were frozen.

    Why: with nothing below them trainable, autograd stops at the first trainable block, so the
    frozen blocks' backward pass (about two thirds of a training step's compute per block) and their
    AdamW state are skipped. "What Would Elsa Do? Freezing Layers During Transformer Fine-Tuning"
    (Lee, Tang & Lin, 2019) finds that fine-tuning only the upper layers keeps most of BERT's quality
    on GLUE. Not so for a fresh cross-encoder from the all-MiniLM-L6-v2 bi-encoder: 3 frozen blocks of 6
    train 1.69x faster but lose 0.16 validation nDCG@10 at equal steps (benchmarks/training.md §0a), so
    the recipe's default is 0.
    """
    _, blocks = transformer_blocks(model)
    embeddings = getattr(getattr(model, "base_model", None), "embeddings", None)
    if embeddings is None:
        raise InputError(f"cannot find the embeddings of a {type(model).__name__}",
                         fix="use a BERT-style cross-encoder (e.g. one trained by 'rankstack train reranker')")
    if not 0 <= n <= len(blocks):
        raise InputError(f"--freeze-layers {n} is more than the model's {len(blocks)} transformer blocks",
                         fix=f"use a number between 0 and {len(blocks)}")
    frozen = 0
    for module in [embeddings, *list(blocks)[:n]]:
        for p in module.parameters():
            if p.requires_grad:
                p.requires_grad_(False)
                frozen += p.numel()
    return frozen


def head_prefixes(module: Any) -> list[str]:
    """Parameter-name prefixes of a fresh classification head (pooler, classifier, score)."""
    names = [n for n, _ in module.named_parameters()]
    prefixes = set()
    for n in names:
        parts = n.split(".")
        for key in ("classifier", "pooler", "score"):
            if key in parts:
                prefixes.add(".".join(parts[: parts.index(key) + 1]) + ".")
    return sorted(prefixes)


def attach_teacher_scores(groups: list[Group], teacher: Run) -> list[Group]:
    """Store a teacher run's score of every group item in ``meta["teacher"]``.

    A document the teacher did not retrieve gets the query's lowest teacher score (it ranked
    below everything the teacher returned).
    """
    per_query = {q: dict(zip(d.tolist(), s.tolist())) for q, d, s in teacher.groups()}
    out = []
    for g in groups:
        scores = per_query.get(g.qid, {})
        floor = min(scores.values()) if scores else 0.0
        out.append(dataclasses.replace(g, meta={**g.meta, "teacher": [float(scores.get(d, floor))
                                                                      for d in g.docids]}))
    return out


class DistillationMix:
    """``(1 - w) * loss(scores, labels) + w * kd(scores, teacher)``: judgements plus a teacher's scores.

    With few judged queries a teacher that ranks every candidate gives the student a signal on all
    of them, not just the positive (Hinton et al., 2015; listwise distillation for rerankers). The
    collate packs ``labels[..., 0]`` = relevance and ``labels[..., 1]`` = teacher score. ``kd`` is
    ``"listwise_kl"`` (with ``temperature``) or ``"margin_mse"`` (Hofstätter et al., 2020: matches
    score margins, so student and teacher may use different scales). With ``weight`` 1 the labels'
    loss is not computed at all.
    """

    KD = ("listwise_kl", "margin_mse")

    def __init__(self, loss: Any, weight: float = 0.5, temperature: float = 1.0, kd: str = "listwise_kl") -> None:
        from rankstack.losses import get_loss

        if not 0.0 <= weight <= 1.0:
            raise InputError(f"distillation weight must be in [0, 1], got {weight!r}")
        if kd not in self.KD:
            raise InputError(f"unknown distillation loss {kd!r}", fix=f"choose one of {', '.join(self.KD)}")
        self.base, self.weight = get_loss(loss), float(weight)
        self.kd = get_loss({"name": kd, "args": {"temperature": float(temperature)}} if kd == "listwise_kl" else kd)
        self.__name__ = f"{getattr(self.base, '__name__', 'loss')}+{kd}"

    def spec(self) -> dict[str, Any]:
        base = self.base.spec() if hasattr(self.base, "spec") else repr(self.base)
        kd = self.kd.spec() if hasattr(self.kd, "spec") else getattr(self.kd, "__name__", repr(self.kd))
        return {"name": "distillation_mix", "args": {"loss": base, "weight": self.weight, "kd": kd}}

    def __call__(self, scores: Any, labels: Any, mask: Any = None, weights: Any = None) -> Any:
        if labels.dim() != 3 or labels.shape[-1] != 2:
            raise InputError("distillation needs labels [B, L, 2] (relevance, teacher score)",
                             fix="collate groups that carry meta['teacher'] (attach_teacher_scores)")
        rel, teach = labels[..., 0], labels[..., 1]
        kd = self.kd(scores, teach, mask, weights)
        if self.weight == 1.0:
            return kd
        return (1.0 - self.weight) * self.base(scores, rel, mask, weights) + self.weight * kd
