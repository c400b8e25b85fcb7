"""ADORE: train only the query encoder against a fixed document index.

Zhan et al., "Optimizing Dense Retrieval Model Training with Hard Negatives" (SIGIR 2021), §5: the
documents are encoded once by a fixed encoder; at every step the *current* query encoder retrieves
the top ``adore_depth`` documents from that index, and the loss is computed over the retrieved
documents plus the query's judged positives (appended when not retrieved). The negatives are
therefore exactly what the model would retrieve now, and no step ever re-encodes the corpus -- what
makes ADORE affordable on a CPU. The paper's loss is a LambdaRank-style pairwise loss; here any
registered loss works (default: InfoNCE over the retrieved list, ``--loss lambdarank`` for the paper's).

Retrieval during training is exact inner-product search with FAISS (``IndexFlatIP``) over the fixed
vectors, from the embedding cache the ``dense`` retriever shares. The saved artefact is the query
encoder (a sentence-transformers folder, kind ``biencoder``) with ``index/``: a dense index of the
fixed document vectors pinned to that query encoder, so ``dense(index='OUT/index')`` retrieves with
the pair the model was trained for (re-encoding documents with the query encoder would be wrong).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.recipes.biencoder import BiEncoderOutcome, BiEncoderTrainConfig, Prepared

__all__ = ["AdoreExample", "AdoreCollator", "FixedIndex", "train_adore", "fixed_document_index", "index_writer"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdoreExample:
    qid: str
    query: str
    positives: tuple[str, ...]


class FixedIndex:
    """The fixed document vectors, their FAISS exact index and the row of every document id."""

    def __init__(self, vectors: np.ndarray, docids: list[str]) -> None:
        import faiss
        import torch

        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.docids = list(docids)
        self.row = {d: i for i, d in enumerate(self.docids)}
        self.index = faiss.IndexFlatIP(self.vectors.shape[1])
        self.index.add(self.vectors)
        self.tensor = torch.from_numpy(self.vectors)

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        return self.index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, len(self.docids)))[1]


class AdoreCollator:
    """``collate(examples)``: retrieve with the current query encoder (no gradient), then return the
    fixed vectors of the retrieved documents + positives, labels 1 on judged positives."""

    def __init__(self, model: Any, index: FixedIndex, depth: int, query_max_length: int, precision: str) -> None:
        self.model, self.index, self.depth = model, index, depth
        self.query_max_length, self.precision = query_max_length, precision

    def __call__(self, examples: list[AdoreExample]) -> tuple[dict[str, Any], Any, Any, None]:
        import contextlib

        import torch

        from rankstack.encode.biencoder_model import embed, tokenize

        feats = tokenize(self.model, [e.query for e in examples], self.query_max_length)
        was = self.model.training
        self.model.eval()
        auto = torch.autocast("cpu", dtype=torch.bfloat16) if self.precision == "bf16" else contextlib.nullcontext()
        try:
            with torch.inference_mode(), auto:
                qv = embed(self.model, feats).numpy()
        finally:
            self.model.train(was)
        rows = self.index.search(qv, self.depth)
        lists = []
        for e, r in zip(examples, rows):
            cand = [int(x) for x in r if x >= 0]
            pos_rows = [self.index.row[d] for d in e.positives if d in self.index.row]
            cand += [p for p in pos_rows if p not in set(cand)]
            lists.append((cand, set(pos_rows)))
        width = max(len(c) for c, _ in lists)
        flat = [x for c, _ in lists for x in c]
        own = torch.zeros(len(examples), width, dtype=torch.long)
        labels = torch.zeros(len(examples), width)
        mask = torch.zeros(len(examples), width, dtype=torch.bool)
        start = 0
        for i, (cand, pos) in enumerate(lists):
            n = len(cand)
            own[i, :n] = torch.arange(start, start + n)
            labels[i, :n] = torch.tensor([1.0 if c in pos else 0.0 for c in cand])
            mask[i, :n] = True
            start += n
        inputs = {"q": feats, "d_vectors": self.index.tensor[torch.tensor(flat, dtype=torch.long)], "own": own}
        return inputs, labels, mask, None


class RetrievalValidator:
    """nDCG@10 of full retrieval from the fixed index with the current query encoder (queries only:
    cheap, and exactly what the saved artefact will do)."""

    def __init__(self, model: Any, index: FixedIndex, queries: Any, qrels: Any, max_length: int, precision: str,
                 threads: int | None) -> None:
        self.model, self.index, self.queries, self.qrels = model, index, queries, qrels
        self.max_length, self.precision, self.threads = max_length, precision, threads

    def __call__(self, *_: Any) -> float:
        from rankstack.encode.biencoder_model import InMemoryEncoder
        from rankstack.evaluate import evaluate
        from rankstack.types import Run

        enc = InMemoryEncoder(self.model, self.max_length, self.precision, self.threads, progress=False)
        qv = enc.encode(list(self.queries.texts))
        k = min(100, len(self.index.docids))
        scores, rows = self.index.index.search(qv, k)
        run = Run(np.repeat(np.asarray(self.queries.qids, dtype=str), k),
                  np.asarray(self.index.docids)[rows.reshape(-1)], scores.reshape(-1).astype(np.float64))
        return float(evaluate(run, self.qrels, ["nDCG@10"]).mean["nDCG@10"])


def fixed_document_index(config: BiEncoderTrainConfig, coll: Any) -> tuple[FixedIndex, str]:
    """The corpus encoded once by the base encoder (through the shared embedding cache) and its id."""
    from rankstack.encode.base import cached_encode, load_encoder

    enc = load_encoder(config.base, precision=config.precision, threads=config.threads)
    docs = list(coll.corpus())
    vectors = cached_encode(enc, [d.contents for d in docs], [d.docid for d in docs], config.cache_dir)
    return FixedIndex(vectors, [d.docid for d in docs]), enc.encoder_id


def index_writer(config: BiEncoderTrainConfig, index: FixedIndex, doc_encoder_id: str) -> Any:
    """``extra(tmp)`` for :func:`save_biencoder`: the fixed vectors as a dense index pinned to the saved
    query encoder (its id is computed from the files in ``tmp`` under the final folder's name)."""

    def write(tmp: Path) -> None:
        from rankstack.encode.sentence_transformers import SentenceTransformerEncoder
        from rankstack.retrieve.dense import DenseIndex

        out = Path(str(config.out))
        query_id = SentenceTransformerEncoder(tmp, name=out.name).encoder_id
        built = DenseIndex.build(index.vectors, index.docids, query_id, index="flat")
        built.save(tmp / "index", extra_params={"encoder_spec": str(out.resolve()), "encoder_backend": "torch",
                                                "precision": config.precision, "adore_doc_encoder": doc_encoder_id})

    return write


def train_adore(config: BiEncoderTrainConfig, prepared: Prepared, *, progress: bool | None = None) -> BiEncoderOutcome:
    """Train the query encoder against the fixed index; save it with that index."""
    from rankstack.encode.biencoder_model import BiEncoderScorer, load_trainable
    from rankstack.errors import InputError
    from rankstack.recipes.biencoder_fit import config_dict, save_model, trainer_for
    from rankstack.recipes.reranker import loss_spec
    from rankstack.train.negatives import positives_of

    index, doc_encoder_id = fixed_document_index(config, prepared.collection)
    model = load_trainable(config.base, threads=config.threads)
    pos = positives_of(prepared.qrels)
    examples = [AdoreExample(q, t, tuple(sorted(pos[q]))) for q, t in prepared.queries.subset(prepared.train_q)
                if q in pos]
    if not examples:
        raise InputError(f"no {config.split} query of {config.collection} has a judged positive")
    validate_fn = None
    if prepared.val_q:
        validate_fn = RetrievalValidator(model, index, prepared.queries.subset(prepared.val_q), prepared.qrels,
                                         config.query_max_length, config.precision, config.threads)
    trainer = trainer_for(config, BiEncoderScorer(model), loss_spec(config.loss_name), validate_fn,
                          config.budget_seconds, progress)
    collate = AdoreCollator(model, index, config.adore_depth, config.query_max_length, trainer.precision_used)
    start = time.perf_counter()
    result = trainer.fit(examples, collate)
    seconds = time.perf_counter() - start
    model.eval()
    training = {"config": config_dict(config), "steps": result.steps, "seconds": round(seconds, 1),
                "best_validation": result.best_value, "examples": len(examples), "trainer": trainer.config(),
                "doc_encoder": doc_encoder_id}
    out = save_model(config, model, prepared, training, extra=index_writer(config, index, doc_encoder_id)
                     if config.out is not None else None)
    return BiEncoderOutcome("adore", model, seconds, result.steps, result.best_value, result.stopped_by_budget,
                            out, details={"doc_encoder": doc_encoder_id, "examples": len(examples)},
                            history=result.history)
