"""Train a neural dense PRF model (``rankstack.retrieve.neural_prf``) with or without the LoL regulariser.

Why a recipe: the with/without-LoL comparison is only meaningful at an equal budget (same data, same
seed, same batches, same steps), so both settings run through this one loop and differ only in
``lol_weight``. Data: for each training query with a judged positive, the (fixed) MiniLM query
vector, the vectors of its dense top-``max(depths)`` feedback documents, and candidates = its
positives + the highest-ranked dense non-positives (hard negatives). Each step revises every query
once per feedback depth (``depths``), scores the candidates with each revision, and minimises the mean
ranking loss (a ``rankstack.losses`` loss, default ListNet = softmax cross-entropy) plus
``lol_weight`` times LoL over the per-depth losses (Zhu et al., "LoL: A Comparative Regularization
Loss over Query Reformulation Losses for Pseudo-Relevance Feedback", SIGIR 2022). A short explicit
loop, not ``rankstack.train.Trainer``: the inputs are fixed tensors and the loss couples several
revisions of one query, which the Trainer's (query, candidate list) batches do not express.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.errors import InputError
from rankstack.recipes.config import option

__all__ = ["NeuralPRFConfig", "NeuralPRFOutcome", "PRFData", "prepare", "train", "run", "evaluate_depths"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NeuralPRFConfig:
    """Train neural dense PRF on a collection's training split (defaults: the scifact study)."""

    collection: str = option("scifact", help="a BEIR folder or a name under the data root")
    data_root: str | None = option(None, help="folder holding collections by name")
    split: str = option("train", help="qrels split to train on")
    out: Path | None = option(None, help="model folder to write (none: do not save)")
    overwrite: bool = option(False, help="replace a neural PRF model already at --out")
    cache_dir: Path = option(Path(".cache/rankstack"), help="embedding cache folder")
    encoder: str = option("minilm", help="encoder of the dense index")
    depths: list[int] = option([1, 3, 5, 10], help="feedback depths revised in parallel (ascending)")
    lol_weight: float = option(1.0, help="weight of the LoL regulariser (0 = without LoL)")
    lol_margin: float = option(0.0, help="LoL hinge margin")
    lol_detach: bool = option(False, help="variant: treat the shallower revision's loss as a constant")
    loss: str = option("listnet(temperature=0.05)", metavar="SPEC", help="ranking loss from rankstack.losses")
    negatives: int = option(30, help="hard negatives per query from the dense top 100")
    epochs: int = option(20, help="passes over the training queries")
    batch_size: int = option(32, help="queries per step")
    lr: float = option(1e-3, help="AdamW learning rate")
    weight_decay: float = option(0.01, help="AdamW weight decay")
    hidden: int = option(64, help="width of the attention scorer")
    seed: int = option(0, help="seed of initialisation and batch order")
    threads: int = option(1, help="torch threads")

    def __post_init__(self) -> None:
        d = list(self.depths)
        if not d or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in d) or d != sorted(set(d)):
            raise InputError(f"depths must be ascending distinct positive integers, got {d!r}")
        for name in ("negatives", "epochs", "batch_size", "hidden"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.lol_weight < 0 or self.lr <= 0:
            raise InputError("lol_weight must be >= 0 and lr > 0")


@dataclass
class PRFData:
    """Fixed training tensors (NumPy): queries, feedback, candidates, labels, masks."""

    q: np.ndarray          # [N, d]
    fb: np.ndarray         # [N, K, d]
    fb_mask: np.ndarray    # [N, K]
    cand: np.ndarray       # [N, L, d]
    labels: np.ndarray     # [N, L]
    cand_mask: np.ndarray  # [N, L]
    encoder_id: str


@dataclass
class NeuralPRFOutcome:
    model: Any
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    out: Path | None = None

    def to_text(self) -> str:
        last = self.history[-1] if self.history else {}
        rank, lol = last.get("rank", float("nan")), last.get("lol", float("nan"))
        return (f"trained neural PRF in {self.seconds:.1f}s; last epoch rank loss {rank:.4f}, LoL {lol:.4f}"
                + (f"; saved to {self.out}" if self.out else ""))


def dense_retriever(config: NeuralPRFConfig, k: int = 100) -> Any:
    """The flat MiniLM dense retriever over the collection (embeddings from the cache)."""
    from rankstack.data.beir import Collection
    from rankstack.retrieve.dense import DenseRetriever

    coll = Collection(config.collection, data_root=config.data_root)
    return DenseRetriever.from_collection(coll, encoder=config.encoder, index="flat", cache_dir=config.cache_dir,
                                          k=k, threads=config.threads)


def prepare(config: NeuralPRFConfig, dense: Any) -> PRFData:
    """Training tensors from the split's qrels and the dense top 100 (see module doc)."""
    from rankstack.data.beir import Collection
    from rankstack.encode.base import cached_encode

    coll = Collection(config.collection, data_root=config.data_root)
    queries, qrels = coll.queries(config.split), coll.qrels(config.split).to_dict()
    qids = list(queries.qids)
    qvecs = cached_encode(dense.encoder, list(queries.texts), qids, config.cache_dir, progress=False)
    depth = max(100, max(config.depths))
    _, rows = dense.index.search(qvecs, depth)
    docids, known = dense.index.docids, set(dense.index.docids.tolist())
    keep, pos_lists, neg_lists = [], [], []
    for i, qid in enumerate(qids):
        pos = [d for d, rel in qrels.get(qid, {}).items() if rel > 0 and d in known]
        if not pos:
            continue
        ranked = [docids[r] for r in rows[i] if r >= 0]
        negs = [d for d in ranked if d not in set(pos)][:config.negatives]
        keep.append(i), pos_lists.append(pos), neg_lists.append(negs)
    if not keep:
        raise InputError(f"no {config.split} query of {config.collection} has a judged document in the corpus")
    k_max, L = max(config.depths), max(len(p) for p in pos_lists) + config.negatives
    n, dim = len(keep), dense.index.dim
    fb_rows = rows[keep, :k_max]
    fb = np.zeros((n, k_max, dim), np.float32)
    fb_mask = fb_rows >= 0
    cand = np.zeros((n, L, dim), np.float32)
    labels = np.zeros((n, L), np.float32)
    cand_mask = np.zeros((n, L), bool)
    for j, (pos, negs) in enumerate(zip(pos_lists, neg_lists)):
        r = fb_rows[j][fb_rows[j] >= 0]
        fb[j, :len(r)] = dense.index.vectors_of(docids[r].tolist())
        c = pos + negs
        cand[j, :len(c)] = dense.index.vectors_of(c)
        labels[j, :len(pos)] = 1.0
        cand_mask[j, :len(c)] = True
    log.info("neural PRF data: %d queries, %d feedback docs, %d candidates", n, k_max, L)
    return PRFData(qvecs[keep], fb, fb_mask, cand, labels, cand_mask, dense.encoder.encoder_id)


def train(config: NeuralPRFConfig, data: PRFData) -> NeuralPRFOutcome:
    """The explicit loop (equal budget for every ``lol_weight``: same seed, batches and steps)."""
    import torch

    from rankstack.hardware import torch_threads
    from rankstack.losses.lol import lol_regularizer
    from rankstack.retrieve.neural_prf import NeuralPRFModel

    loss_fn = _loss_from_spec(config.loss)
    start = time.perf_counter()
    with torch_threads(config.threads):
        model = NeuralPRFModel(data.q.shape[1], data.encoder_id, hidden=config.hidden, max_fb=max(config.depths),
                               seed=config.seed, info={"config": _jsonable(config)})
        net = model.net
        opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        t = {k: torch.from_numpy(getattr(data, k)) for k in ("q", "fb", "fb_mask", "cand", "labels", "cand_mask")}
        gen = torch.Generator().manual_seed(config.seed)
        history = []
        net.train()
        for epoch in range(config.epochs):
            order = torch.randperm(len(data.q), generator=gen)
            sums = {"rank": 0.0, "lol": 0.0}
            steps = 0
            for s in range(0, len(order), config.batch_size):
                b = order[s:s + config.batch_size]
                per_depth = []
                for k in config.depths:
                    new_q = net(t["q"][b], t["fb"][b, :k], t["fb_mask"][b, :k])
                    scores = torch.einsum("bd,bld->bl", new_q, t["cand"][b])
                    per_depth.append(torch.stack([loss_fn(scores[i:i + 1], t["labels"][b][i:i + 1],
                                                          t["cand_mask"][b][i:i + 1]) for i in range(len(b))]))
                losses = torch.stack(per_depth, dim=1)              # [B, m]
                rank = losses.mean()
                lol = lol_regularizer(losses, margin=config.lol_margin,
                                      detach_shallower=config.lol_detach) if len(config.depths) > 1 \
                    else rank * 0.0
                total = rank + config.lol_weight * lol
                opt.zero_grad()
                total.backward()
                opt.step()
                sums["rank"] += float(rank.detach())
                sums["lol"] += float(lol.detach())
                steps += 1
            history.append({"epoch": epoch + 1, **{k: v / steps for k, v in sums.items()}})
            log.info("epoch %d: rank %.4f lol %.4f", epoch + 1, history[-1]["rank"], history[-1]["lol"])
    model.info["seconds"] = time.perf_counter() - start
    model.info["history"] = history
    return NeuralPRFOutcome(model, time.perf_counter() - start, history)


def _loss_from_spec(spec: str) -> Any:
    from rankstack.losses import get_loss
    from rankstack.pipeline.expression import parse_component

    name, args = parse_component(spec, what="loss")
    return get_loss(name, **args)


def _jsonable(config: NeuralPRFConfig) -> dict[str, Any]:
    from dataclasses import asdict

    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}


def run(config: NeuralPRFConfig) -> NeuralPRFOutcome:
    """Prepare the data, train, and save the model to ``config.out`` if given."""
    from rankstack.data.beir import Collection, default_data_root
    from rankstack.storage import check_output_folder

    coll = Collection(config.collection, data_root=config.data_root)
    inputs = (coll.path, Path(config.data_root) if config.data_root else default_data_root())
    if config.out is not None:  # refuse a bad --out before minutes of work
        check_output_folder(config.out, overwrite=config.overwrite, inputs=inputs)
    dense = dense_retriever(config)
    outcome = train(config, prepare(config, dense))
    if config.out is not None:
        outcome.model.save(config.out, overwrite=config.overwrite, inputs=inputs)
        outcome.out = Path(config.out)
    return outcome


def evaluate_depths(dense: Any, queries: Any, qrels: Any, depths: list[int], revise: Any,
                    measure: str = "nDCG@10", k: int = 1000) -> dict[int, float]:
    """``measure`` of the second pass at each feedback depth; ``revise(q, fb, mask) -> new q``."""
    from rankstack.encode.base import cached_encode
    from rankstack.evaluate import evaluate
    from rankstack.types import Run

    qids = list(queries.qids)
    qvecs = cached_encode(dense.encoder, list(queries.texts), qids, dense.cache_dir, progress=False)
    _, rows = dense.index.search(qvecs, max(depths))
    out = {}
    for depth in depths:
        fb = np.zeros((len(qids), depth, dense.index.dim), np.float32)
        mask = rows[:, :depth] >= 0
        for i in range(len(qids)):
            r = rows[i, :depth][mask[i]]
            fb[i, :len(r)] = dense.index.vectors_of(dense.index.docids[r].tolist())
        scores, hits = dense.index.search(revise(qvecs, fb, mask), k)
        keep = hits >= 0
        run = Run(np.repeat(np.asarray(qids, dtype=str), keep.sum(axis=1)), dense.index.docids[hits[keep]],
                  scores[keep].astype(np.float64), name=f"prf{depth}", queries=queries)
        out[depth] = float(evaluate(run, qrels, [measure]).mean[measure])
    return out
