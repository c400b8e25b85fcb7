"""An imitation surrogate of a black-box ranker (Order-Disorder).

Liu et al., "Order-Disorder: Imitation Adversarial Attacks for Black-box Neural Ranking Models"
(CCS 2022): query the victim, keep only the *order* it returns, and train a white-box model with a
pairwise loss to reproduce that order; attacks are then crafted with the surrogate's gradients and
transferred to the victim. Here the surrogate is deliberately small so it trains in seconds on a CPU:
MaxSim late interaction (Khattab & Zaharia, "ColBERT", SIGIR 2020) over MiniLM's *frozen* input
word-piece embeddings, with a learned projection and a learned weight per query term (an idf-like
term importance BM25 victims need). Exact term matches score 1, related words less: it can imitate
lexical and semantic victims, and its gradient with respect to document token embeddings guides
word substitution and trigger selection. Training goes through :class:`rankstack.train.Trainer`
with the RankNet loss (labels: the victim's rank order), as Order-Disorder's pairwise imitation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["MaxSimSurrogate", "WordTokenizer", "WordPieceTokenizer", "imitate", "agreement", "ImitationResult",
           "minilm_surrogate"]

log = logging.getLogger(__name__)


class WordTokenizer:
    """One id per lower-cased word (tests, toy vocabularies); unknown words map to id 0."""

    def __init__(self, vocab: Sequence[str]) -> None:
        self.vocab = list(vocab)
        self.ids = {w: i for i, w in enumerate(self.vocab)}

    def words(self, words: Sequence[str], max_tokens: int = 256) -> tuple[list[int], list[int]]:
        ids = [self.ids.get(w.lower(), 0) for w in words][:max_tokens]
        return ids, list(range(len(ids)))

    def word_id(self, word: str) -> int | None:
        return self.ids.get(word.lower())


class WordPieceTokenizer:
    """MiniLM's word-piece tokenizer (``tokenizers``), without special tokens, with each token's word."""

    def __init__(self, path: str) -> None:
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(path)
        self.tok.no_truncation()
        self.tok.no_padding()
        vocab = self.tok.get_vocab()
        self.vocab = [""] * len(vocab)
        for w, i in vocab.items():
            self.vocab[i] = w

    def words(self, words: Sequence[str], max_tokens: int = 256) -> tuple[list[int], list[int]]:
        if not words:
            return [], []
        enc = self.tok.encode(list(words), is_pretokenized=True, add_special_tokens=False)
        ids = enc.ids[:max_tokens]
        return list(ids), [int(w) for w in enc.word_ids[:max_tokens]]

    def word_id(self, word: str) -> int | None:
        return self.tok.token_to_id(word.lower())


class MaxSimSurrogate(nn.Module):
    """``s(q, d) = scale * sum_i w(q_i) * max_j cos(P e(q_i), P e(d_j))`` over frozen token embeddings.

    ``forward(inputs)`` takes ``q_ids[B, Lq], q_mask, d_ids[B, L, Ld], d_mask`` and returns ``[B, L]``.
    """

    def __init__(self, embeddings: np.ndarray, tokenizer: Any, max_tokens: int = 256) -> None:
        super().__init__()
        emb = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
        self.embed = nn.Embedding.from_pretrained(emb, freeze=True)
        dim = emb.shape[1]
        self.proj = nn.Linear(dim, dim, bias=False)
        with torch.no_grad():
            self.proj.weight.copy_(torch.eye(dim))
        self.term_weight = nn.Embedding(emb.shape[0], 1)
        nn.init.zeros_(self.term_weight.weight)
        self.scale = nn.Parameter(torch.tensor(1.0))
        self.tokenizer, self.max_tokens = tokenizer, max_tokens

    # scoring ----------------------------------------------------------------------------------
    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.proj(x), dim=-1)

    def score_embedded(self, q_ids: torch.Tensor, q_mask: torch.Tensor, d_emb: torch.Tensor,
                       d_mask: torch.Tensor) -> torch.Tensor:
        """Scores ``[B, L]`` from query ids ``[B, Lq]`` and document *embeddings* ``[B, L, Ld, D]``."""
        q = self._norm(self.embed(q_ids))  # [B, Lq, D]
        d = self._norm(d_emb)  # [B, L, Ld, D]
        sim = torch.einsum("bqd,bltd->blqt", q, d)
        sim = sim.masked_fill(~d_mask.bool()[:, :, None, :], -1.0)
        best = sim.max(dim=-1).values.clamp(min=0.0)  # [B, L, Lq]
        w = nn.functional.softplus(self.term_weight(q_ids).squeeze(-1) + 1.0) * q_mask  # [B, Lq]
        return self.scale * (best * w[:, None, :]).sum(-1)

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.score_embedded(inputs["q_ids"], inputs["q_mask"], self.embed(inputs["d_ids"]), inputs["d_mask"])

    # batching helpers ---------------------------------------------------------------------------
    def tokens(self, text: str) -> list[int]:
        return self.tokenizer.words(text.split(), self.max_tokens)[0]

    def batch(self, query_ids: Sequence[list[int]], doc_ids: Sequence[Sequence[list[int]]]) -> dict[str, torch.Tensor]:
        """Pad token-id lists into the ``forward`` inputs (one list of documents per query)."""
        B = len(query_ids)
        Lq = max(1, max(len(q) for q in query_ids))
        L = max(len(ds) for ds in doc_ids)
        Ld = max(1, max((len(d) for ds in doc_ids for d in ds), default=1))
        q = torch.zeros(B, Lq, dtype=torch.long)
        qm = torch.zeros(B, Lq)
        d = torch.zeros(B, L, Ld, dtype=torch.long)
        dm = torch.zeros(B, L, Ld)
        for b, ids in enumerate(query_ids):
            q[b, :len(ids)] = torch.tensor(ids, dtype=torch.long)
            qm[b, :len(ids)] = 1
            for l, doc in enumerate(doc_ids[b]):
                d[b, l, :len(doc)] = torch.tensor(doc, dtype=torch.long)
                dm[b, l, :len(doc)] = 1
        return {"q_ids": q, "q_mask": qm, "d_ids": d, "d_mask": dm}

    @torch.no_grad()
    def score_texts(self, query: str, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        inp = self.batch([self.tokens(query)], [[self.tokens(t) for t in texts]])
        return self(inp)[0].double().numpy()


@dataclass
class ImitationResult:
    queries: int
    steps: int
    seconds: float
    agreement: float | None = None  # mean Spearman correlation with the victim on held-out lists


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3:
        return float("nan")
    ra = np.argsort(np.argsort(a, kind="stable"), kind="stable").astype(float)
    rb = np.argsort(np.argsort(b, kind="stable"), kind="stable").astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


def agreement(model: MaxSimSurrogate, lists: Mapping[str, tuple[np.ndarray, np.ndarray]],
              query_text: Mapping[str, str], doc_text: Callable[[list[str]], list[str]]) -> float:
    """Mean Spearman correlation between surrogate and victim scores over each query's list."""
    vals = []
    for q, (docids, scores) in lists.items():
        s = model.score_texts(query_text[q], doc_text(docids.tolist()))
        vals.append(_spearman(s, np.asarray(scores)))
    vals = [v for v in vals if np.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def imitate(model: MaxSimSurrogate, lists: Mapping[str, tuple[np.ndarray, np.ndarray]],
            query_text: Mapping[str, str], doc_text: Callable[[list[str]], list[str]], *, list_size: int = 16,
            top: int = 8, epochs: int = 3, lr: float = 5e-3, seed: int = 0, time_budget: float | None = None,
            threads: int | None = 1, progress: bool | None = False) -> ImitationResult:
    """Train ``model`` to reproduce the victim's order on ``lists`` (victim rank -> graded label, RankNet)."""
    import time

    from rankstack.train import Trainer

    rng = np.random.default_rng(seed)
    examples = []
    for q, (docids, _) in lists.items():
        n = len(docids)
        if n < 2:
            continue
        head = list(range(min(top, n)))
        rest = list(range(len(head), n))
        tail = sorted(rng.choice(rest, size=min(len(rest), list_size - len(head)), replace=False).tolist()) if rest else []
        pos = head + tail
        ids = docids[pos].tolist()
        examples.append((model.tokens(query_text[q]), [model.tokens(t) for t in doc_text(ids)],
                         [float(n - p) for p in pos]))

    def collate(batch):
        inp = model.batch([e[0] for e in batch], [e[1] for e in batch])
        L = inp["d_ids"].shape[1]
        labels = torch.zeros(len(batch), L)
        mask = torch.zeros(len(batch), L, dtype=torch.bool)
        for b, e in enumerate(batch):
            labels[b, :len(e[2])] = torch.tensor(e[2])
            mask[b, :len(e[2])] = True
        return inp, labels, mask, None

    start = time.perf_counter()
    trainer = Trainer(model, "ranknet", lr=lr, epochs=epochs, batch_size=4, precision="fp32", seed=seed,
                      num_threads=threads, progress=progress, time_budget=time_budget, warmup_ratio=0.1)
    fit = trainer.fit(examples, collate)
    model.eval()
    return ImitationResult(len(examples), fit.steps, time.perf_counter() - start)


def minilm_surrogate(max_tokens: int = 256) -> MaxSimSurrogate:
    """A surrogate over all-MiniLM-L6-v2's word-piece embeddings (from the locked package; no download)."""
    from rankstack.encode.sentence_transformers import minilm_path
    from rankstack.robust.synonyms import _minilm_tables

    path = minilm_path()
    _, emb = _minilm_tables(str(path))
    return MaxSimSurrogate(emb, WordPieceTokenizer(str(path / "tokenizer.json")), max_tokens=max_tokens)
