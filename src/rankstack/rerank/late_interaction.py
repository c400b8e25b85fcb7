"""MaxSim reranker: ColBERT late interaction over any first stage (``bm25 % 100 >> colbert_rerank(model=...)``).

Why (ColBERT, Khattab & Zaharia, SIGIR 2020, its "re-ranking" setting): the first stage supplies
candidates and ColBERT re-scores them by MaxSim between query and document token vectors. Document
vectors are looked up in a token store built once for the whole collection (token states cached by
encoder and corpus, see :mod:`rankstack.encode.colbert`) or in a saved ColBERT index -- never
re-encoded per query; with only a ``documents`` source (no collection) the candidates' texts are
encoded on the fly, in length-sorted batches. Depth, tie-breaks and combination with the first-stage
score (interpolation, RRF) come from :class:`~rankstack.rerank.base.PairScorer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rankstack.encode.colbert import ColBERTEncoder, maxsim_flat
from rankstack.errors import InputError
from rankstack.registry import Context, register
from rankstack.rerank.base import DocumentSource, PairScorer

__all__ = ["ColBERTReranker"]


class ColBERTReranker(PairScorer):
    """Rerank by MaxSim. ``store``: a :class:`~rankstack.retrieve.late_interaction.TokenStore` (or index)
    holding the collection's token vectors; without one, ``documents`` texts are encoded per call."""

    name = "colbert_rerank"

    def __init__(self, encoder: ColBERTEncoder, store: Any = None, documents: DocumentSource = None,
                 depth: int | None = 100, batch_size: int = 4096, combine: str | None = None, alpha: float = 0.5,
                 norm: str = "zscore", rrf_k: int = 60, progress: bool = False) -> None:
        if store is None and documents is None:
            raise InputError("colbert_rerank needs a token store (a collection or an index) or documents")
        if store is not None:
            store.check_encoder(encoder.encoder_id)
        super().__init__(documents=documents, depth=depth, batch_size=batch_size, combine=combine, alpha=alpha,
                         norm=norm, rrf_k=rrf_k, sort_by_length=store is None, progress=progress)
        self.encoder, self.store = encoder, store
        self._qcache: dict[str, np.ndarray] = {}

    def doc_texts(self, docids: Sequence[str]) -> list[str]:
        """With a store, the 'texts' handed to :meth:`score_pairs` are the document ids themselves."""
        if self.store is not None:
            self.store.rows_of(docids)  # refuse unknown documents up front, with a clear message
            return [str(d) for d in docids]
        return super().doc_texts(docids)

    def _queries(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        missing = sorted({t for t in texts if t not in self._qcache})
        if missing:
            if len(self._qcache) > 100_000:
                self._qcache.clear()
            self._qcache.update(zip(missing, self.encoder.encode_queries(missing)))
        return self._qcache

    def score_pairs(self, query_texts: Sequence[str], doc_texts: Sequence[str]) -> np.ndarray:
        qvecs = self._queries(query_texts)
        out = np.empty(len(query_texts), dtype=np.float64)
        if self.store is not None:
            rows = self.store.rows_of(doc_texts)
            groups: dict[str, list[int]] = {}
            for i, q in enumerate(query_texts):
                groups.setdefault(q, []).append(i)
            for q, idx in groups.items():
                out[idx] = self.store.score_docs(qvecs[q], rows[idx])
            return out
        vectors, offsets = self.encoder.encode_docs(list(doc_texts), progress=False)
        for i, q in enumerate(query_texts):
            out[i] = maxsim_flat(qvecs[q], vectors[offsets[i]:offsets[i + 1]], np.array([0, offsets[i + 1] - offsets[i]]))[0]
        return out


@register("colbert_rerank", kind="reranker")
def build_colbert_rerank(context: Context | None = None, model: str = "minilm", index: str | None = None,
                         depth: int | None = 100, combine: str | None = None, alpha: float = 0.5,
                         norm: str = "zscore", rrf_k: int = 60, threads: int | None = None, batch_size: int = 32,
                         seed: int = 0, progress: bool = False, query_maxlen: int = 32,
                         doc_maxlen: int = 180) -> ColBERTReranker:
    """MaxSim reranking with a ColBERT model over the context's collection (token vectors cached) or a
    saved ``index``: ``bm25 % 100 >> colbert_rerank(model='DIR', combine='rrf')``."""
    from rankstack.retrieve.late_interaction import ColBERTRetriever, TokenStore

    opts = {"depth": depth, "combine": combine, "alpha": alpha, "norm": norm, "rrf_k": rrf_k, "progress": progress}
    if index is not None:
        retriever = ColBERTRetriever.load(index, model=None if model == "minilm" else model, threads=threads,
                                          batch_size=batch_size)
        return ColBERTReranker(retriever.encoder, store=retriever.index, **opts)
    if context is None or context.collection is None:
        raise InputError("colbert_rerank needs a collection or a saved index", fix="pass --collection or index=FOLDER")
    encoder = ColBERTEncoder(model, threads=threads, batch_size=batch_size, seed=seed, query_maxlen=query_maxlen,
                             doc_maxlen=doc_maxlen)
    store = TokenStore.from_collection(encoder, context.collection, context.cache_dir)
    return ColBERTReranker(encoder, store=store, **opts)
