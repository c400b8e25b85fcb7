"""Neural dense pseudo-relevance feedback: a learned rewrite of the query vector from k feedback vectors.

Why: Rocchio (a fixed mix of the query and the mean feedback vector; Rocchio, "Relevance feedback in
information retrieval", 1971) trusts every feedback document equally, so irrelevant ones drag the
query away ("query drift"), more so as k grows. Like ANCE-PRF (Yu, Xiong & Callan, "Improving Query
Representations for Dense Retrieval with Pseudo Relevance Feedback", 2021) the revision is learned
from relevance labels, but over *fixed* embeddings: a small attention scorer reads each token of
``[q; d_1..d_k]`` (its vector, its product with q, its rank) and the new query is the normalised
attention-weighted sum. The document index is unchanged and nothing is re-encoded, so a model
trains in minutes on a CPU. It is trained with the LoL regulariser (``rankstack.losses.lol``,
Zhu et al., SIGIR 2022) so that more feedback should not make the revision worse.

``neural_prf(model=DIR, fb_docs=k)`` is a Stage over the dense retriever: first pass (or the input
run's top k), revise, second pass. Models are folders with ``weights.safetensors`` and a checksummed
manifest (no pickle); a model refuses an index whose encoder differs from the one it was trained on.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.errors import InputError, require
from rankstack.pipeline.stage import Stage, StageInput, queries_of
from rankstack.registry import Context, register
from rankstack.types import Run

__all__ = ["NeuralPRFModel", "NeuralPRF", "KIND", "rocchio"]

KIND = "neural-prf-model"
FORMAT_VERSION = 1


def rocchio(q: np.ndarray, fb: np.ndarray, alpha: float = 0.4, beta: float = 0.6) -> np.ndarray:
    """Dense Rocchio: ``alpha * q + beta * mean(fb)``, L2-normalised (``q[B, d]``, ``fb[B, k, d]``).

    Defaults are Pyserini's "Rocchio A0.4 B0.6" (Li et al., "Pseudo Relevance Feedback with Deep
    Language Models and Dense Retrievers: Successes and Pitfalls", 2022)."""
    out = alpha * q + beta * fb.mean(axis=1)
    return (out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)).astype(np.float32)


@functools.lru_cache(maxsize=None)
def _net_class() -> type:
    """The torch module, built on first use so importing this module does not import torch."""
    torch = require("torch", "train", "neural PRF")
    nn = torch.nn

    class PRFNet(nn.Module):
        """Attention over ``[q; d_1..d_k]``; returns the unit-norm weighted sum (see module doc)."""

        def __init__(self, dim: int, hidden: int, max_fb: int) -> None:
            super().__init__()
            self.max_fb = max_fb
            self.pos = nn.Embedding(max_fb + 1, hidden)
            nn.init.zeros_(self.pos.weight)
            self.proj = nn.Linear(2 * dim, hidden)
            self.out = nn.Linear(hidden, 1)
            self.query_bias = nn.Parameter(torch.tensor(1.0))  # start close to the original query

        def forward(self, q, fb, fb_mask):  # q [B, d], fb [B, k, d], fb_mask [B, k] -> [B, d]
            tokens = torch.cat([q.unsqueeze(1), fb], dim=1)                     # [B, k+1, d]
            feats = torch.cat([tokens, tokens * q.unsqueeze(1)], dim=-1)
            pos = self.pos(torch.arange(tokens.shape[1], device=q.device))
            logits = self.out(torch.tanh(self.proj(feats) + pos)).squeeze(-1)  # [B, k+1]
            logits = logits + torch.nn.functional.pad(self.query_bias.reshape(1, 1), (0, tokens.shape[1] - 1))
            mask = torch.cat([torch.ones_like(fb_mask[:, :1]), fb_mask], dim=1)
            logits = logits.masked_fill(~mask, float("-inf"))
            w = torch.softmax(logits, dim=-1)
            new = (w.unsqueeze(-1) * tokens).sum(1)
            return torch.nn.functional.normalize(new, dim=-1)

    return PRFNet


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"neural_prf: {name} must be a positive integer, got {value!r}")
    return value


class NeuralPRFModel:
    """A trained PRF network, the encoder id of the vectors it reads, and how it was trained."""

    def __init__(self, dim: int, encoder_id: str, hidden: int = 64, max_fb: int = 10, seed: int = 0,
                 info: dict[str, Any] | None = None) -> None:
        torch = require("torch", "train", "neural PRF")
        self.dim, self.hidden = _positive_int("dim", dim), _positive_int("hidden", hidden)
        self.max_fb = _positive_int("max_fb", max_fb)
        self.encoder_id = encoder_id
        self.info = dict(info or {})
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
            torch.manual_seed(seed)
            self.net = _net_class()(self.dim, self.hidden, self.max_fb)

    def check_depth(self, k: int) -> None:
        _positive_int("fb_docs", k)
        if k > self.max_fb:
            raise InputError(f"neural_prf: this model was built for at most {self.max_fb} feedback documents, "
                             f"got fb_docs={k}", fix=f"use fb_docs <= {self.max_fb} or train with max_fb >= {k}")

    def revise(self, q: np.ndarray, fb: np.ndarray, fb_mask: np.ndarray | None = None) -> np.ndarray:
        """New unit query vectors ``[B, d]`` from ``q[B, d]`` and feedback vectors ``fb[B, k, d]``."""
        torch = require("torch", "train", "neural PRF")
        q, fb = np.asarray(q, np.float32), np.asarray(fb, np.float32)
        if q.ndim != 2 or fb.ndim != 3 or fb.shape[0] != q.shape[0] or q.shape[1] != self.dim \
                or fb.shape[2] != self.dim:
            raise InputError(f"neural_prf: need q[B, {self.dim}] and fb[B, k, {self.dim}], got {q.shape} "
                             f"and {fb.shape}")
        self.check_depth(fb.shape[1])
        mask = np.ones(fb.shape[:2], bool) if fb_mask is None else np.asarray(fb_mask, bool)
        self.net.eval()
        with torch.no_grad():
            out = self.net(torch.from_numpy(q), torch.from_numpy(fb), torch.from_numpy(mask))
        return out.numpy().astype(np.float32)

    def save(self, path: str | Path, *, overwrite: bool = False, inputs: tuple[str | Path, ...] = ()) -> None:
        """``weights.safetensors`` + manifest (dims, encoder id, training info), atomically."""
        from safetensors.torch import save_file

        from rankstack.storage import atomic_directory, write_manifest

        with atomic_directory(path, overwrite=overwrite, inputs=inputs) as tmp:
            state = {k: v.detach().contiguous().clone() for k, v in self.net.state_dict().items()}
            save_file(state, str(Path(tmp) / "weights.safetensors"))
            write_manifest(tmp, KIND, FORMAT_VERSION,
                           {"dim": self.dim, "hidden": self.hidden, "max_fb": self.max_fb,
                            "encoder_id": self.encoder_id, "info": self.info},
                           libraries=["torch", "safetensors"])

    @classmethod
    def load(cls, path: str | Path) -> NeuralPRFModel:
        """Load a saved model; refuses a tampered manifest, changed weights or mismatching tensors."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from rankstack.storage import read_manifest

        path = Path(path)
        p = read_manifest(path, KIND, (FORMAT_VERSION,))["params"]
        try:
            model = cls(int(p["dim"]), str(p["encoder_id"]), hidden=int(p["hidden"]), max_fb=int(p["max_fb"]),
                        info=p.get("info") or {})
            model.net.load_state_dict(load_file(str(path / "weights.safetensors")), strict=True)
        except (KeyError, TypeError, ValueError, RuntimeError, SafetensorError) as exc:
            raise InputError(f"neural PRF model does not match its manifest ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:200]})", path=path, fix="retrain and save it") from None
        return model


class NeuralPRF(Stage):
    """First pass with the dense retriever (or the input run), learned revision, second dense pass."""

    def __init__(self, dense: Any, model: NeuralPRFModel, fb_docs: int = 3, k: int = 1000) -> None:
        model.check_depth(fb_docs)
        _positive_int("k", k)
        dense.index.check_encoder(model.encoder_id)
        self.dense, self.model, self.fb_docs, self.k = dense, model, fb_docs, k
        self.name = "neural_prf"

    def at_least(self, k: int) -> NeuralPRF:
        return self if k <= self.k else NeuralPRF(self.dense, self.model, self.fb_docs, k)

    def feedback(self, inp: StageInput, qvecs: np.ndarray, qids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Feedback vectors ``[B, fb_docs, d]`` and their mask (a query may have fewer documents)."""
        d = self.dense.index.dim
        fb = np.zeros((len(qids), self.fb_docs, d), np.float32)
        mask = np.zeros((len(qids), self.fb_docs), bool)
        if isinstance(inp, Run):
            top = {q: d[:self.fb_docs].tolist() for q, d, _ in inp.groups()}  # groups are in rank order
            for i, qid in enumerate(qids):
                docids = top.get(qid, [])
                if docids:
                    fb[i, :len(docids)] = self.dense.index.vectors_of(docids)
                    mask[i, :len(docids)] = True
            return fb, mask
        _, rows = self.dense.index.search(qvecs, self.fb_docs)
        for i in range(len(qids)):
            r = rows[i][rows[i] >= 0]
            if len(r):
                fb[i, :len(r)] = self.dense.index.vectors_of(self.dense.index.docids[r].tolist())
                mask[i, :len(r)] = True
        return fb, mask

    def transform(self, inp: StageInput) -> Run:
        from rankstack.encode.base import cached_encode

        queries = queries_of(inp, "neural_prf")
        qids = list(queries.qids)
        qvecs = cached_encode(self.dense.encoder, list(queries.texts), qids, self.dense.cache_dir,
                              progress=False)
        fb, mask = self.feedback(inp, qvecs, qids)
        new = self.model.revise(qvecs, fb, mask)
        scores, rows = self.dense.index.search(new, self.k)
        keep = rows >= 0
        return Run(np.repeat(np.asarray(qids, dtype=str), keep.sum(axis=1)), self.dense.index.docids[rows[keep]],
                   scores[keep].astype(np.float64), name="neural_prf", queries=queries)


@register("neural_prf", kind="retriever")
def build_neural_prf(model: str, context: Context | None = None, fb_docs: int = 3, k: int = 1000,
                     encoder: str = "minilm", index: str = "flat", precision: str = "auto",
                     threads: int = 0) -> NeuralPRF:
    """Neural PRF (a saved ``model`` folder) over the dense retriever of the context's collection
    (or a saved dense index folder given as ``index``)."""
    from rankstack.retrieve.dense import build_dense

    prf = NeuralPRFModel.load(model)
    prf.check_depth(fb_docs)  # before the (slower) dense retriever is built
    dense = build_dense(context=context, encoder=encoder, index=index, precision=precision, threads=threads,
                        k=max(k, fb_docs))
    return NeuralPRF(dense, prf, fb_docs=fb_docs, k=k)
