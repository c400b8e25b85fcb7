"""Learned sparse first stages: ``splade`` (queries expanded by the model) and ``splade_if``
(inference-free: queries as idf-weighted tokens), over :class:`~rankstack.retrieve.sparse_index.SparseIndex`.

SPLADE v2 (Formal et al., "SPLADE v2", 2021) scores ``s(q, d) = sum_t w_q(t) w_d(t)`` with both sides
expanded by the MLM model; the inference-free variant (Geng, Ru & Yang, "Towards Competitive Search
Relevance For Inference-Free Learned Sparse Retrievers", 2024) keeps the document side and replaces
the query encoder with ``w_q(t) = idf(t)`` for each distinct query token, so a query costs a
tokenisation and a posting-list walk, like BM25.

The Stage behaves like BM25's: Queries -> Run (top ``k``, scores > 0, trec_eval order), ``% k`` pushes
its depth down via :meth:`at_least`, and given a Run it acts as a reranker: every input document is
rescored by the same dot product (kept even at score 0, as the dense reranker does) and nothing else
is added.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.data.beir import Collection
from rankstack.encode.splade import DEFAULT_MODEL, SpladeEncoder
from rankstack.errors import InputError
from rankstack.pipeline.stage import Stage, StageInput, queries_of
from rankstack.registry import Context, register
from rankstack.retrieve.sparse_index import SparseIndex
from rankstack.types import Run

__all__ = ["SparseRetriever", "MODES", "build_index"]

log = logging.getLogger(__name__)

MODES = ("full", "idf")


def build_index(encoder: SpladeEncoder, collection: Collection | str | Path,
                cache_dir: str | Path | None = None) -> SparseIndex:
    """Expand every document (cached by model x corpus) and index the impacts; idf for inference-free queries.

    Empty documents get no terms (and a warning); an empty corpus, or one whose documents are all
    empty, is refused.
    """
    coll = collection if isinstance(collection, Collection) else Collection(collection)
    docs = list(coll.corpus())
    if not docs:
        raise InputError("splade: cannot index an empty corpus", path=coll.corpus_path,
                         fix="the corpus needs at least one document")
    texts = [d.contents for d in docs]
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if len(empty) == len(texts):
        raise InputError(f"splade: all {len(texts)} documents are empty", path=coll.corpus_path,
                         fix="check the corpus' title/text fields")
    if empty:
        log.warning("splade: %d empty document(s) (e.g. %r) get no terms", len(empty), docs[empty[0]].docid)
    empty_set = set(empty)
    keep = [i for i in range(len(texts)) if i not in empty_set]
    mat = encoder.cached_encode([texts[i] for i in keep], [docs[i].docid for i in keep], cache_dir)
    if empty:
        import scipy.sparse as sp

        place = sp.csr_matrix((np.ones(len(keep), dtype=np.float32), (keep, np.arange(len(keep)))),
                              shape=(len(texts), len(keep)))
        mat = (place @ mat).tocsr()  # empty documents become empty rows
    idf = encoder.corpus_idf(texts)
    return SparseIndex.build(mat, [d.docid for d in docs], encoder.describe(), idf=idf)


class SparseRetriever(Stage):
    """Top-``k`` retrieval (or reranking of a Run) with a SPLADE encoder over a sparse index.

    ``mode="full"``: queries are expanded by the model (SPLADE v2). ``mode="idf"``: inference-free
    queries (idf-weighted tokens; the index must carry the corpus idf). ``threads``: query blocks
    scored in parallel (0 = one per core).
    """

    def __init__(self, encoder: SpladeEncoder, index: SparseIndex, mode: str = "full", k: int = 1000,
                 threads: int = 0) -> None:
        if mode not in MODES:
            raise InputError(f"sparse: unknown mode {mode!r}", fix=f"choose one of {', '.join(MODES)}")
        for name, value, low in (("k", k, 1), ("threads", threads, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InputError(f"sparse: {name} must be an integer >= {low}, got {value!r}")
        index.check_encoder(encoder.describe(), need_model=mode == "full")
        if mode == "idf" and index.idf is None:
            raise InputError("sparse: this index has no idf table, so it cannot serve inference-free queries",
                             fix="rebuild it with build_index(...) or use mode='full'")
        self.encoder, self.index, self.mode, self.k, self.threads = encoder, index, mode, k, threads
        self.name = "splade" if mode == "full" else "splade_if"

    @classmethod
    def from_collection(cls, collection: Collection | str | Path, model: str | Path = DEFAULT_MODEL,
                        mode: str = "full", cache_dir: str | Path | None = None, k: int = 1000, threads: int = 0,
                        **encoder_args: Any) -> SparseRetriever:
        encoder = SpladeEncoder(model, **encoder_args)
        return cls(encoder, build_index(encoder, collection, cache_dir), mode=mode, k=k, threads=threads)

    @classmethod
    def load(cls, path: str | Path, mode: str = "full", k: int = 1000, threads: int = 0,
             model: str | Path | None = None, **encoder_args: Any) -> SparseRetriever:
        """A saved index with the encoder recorded in its manifest (or ``model``, checked against it)."""
        index = SparseIndex.load(path)
        recorded = index.encoder
        encoder_args.setdefault("max_length", int(recorded.get("max_length", 256)))
        encoder_args.setdefault("doc_top_k", int(recorded.get("doc_top_k", 256)))
        return cls(SpladeEncoder(model or recorded.get("model", DEFAULT_MODEL), **encoder_args), index, mode=mode,
                   k=k, threads=threads)

    def save(self, path: str | Path, *, overwrite: bool = False, inputs: tuple[str | Path, ...] = ()) -> dict:
        return self.index.save(path, overwrite=overwrite, inputs=inputs)

    def at_least(self, k: int) -> SparseRetriever:
        """A copy retrieving at least ``k`` per query (shares encoder and index; ``self`` unchanged)."""
        if k <= self.k:
            return self
        other = copy.copy(self)
        other.k = k
        return other

    def encode_queries(self, texts: list[str]) -> Any:
        if self.mode == "idf":
            return self.encoder.idf_queries(texts, self.index.idf)
        return self.encoder.encode_queries(texts)

    def transform(self, inp: StageInput) -> Run:
        queries = queries_of(inp, self.name)
        qmat = self.encode_queries(list(queries.texts))
        if isinstance(inp, Run):
            qpos = {q: i for i, q in enumerate(queries.qids)}
            rows = np.array([qpos[q] for q in inp.qids.tolist()], dtype=np.int64)
            scores = self.index.score_pairs(qmat, rows, inp.docids.tolist())
            return inp.replace(scores=scores, name=self.name)
        results = self.index.search(qmat, self.k, threads=self.threads)
        order = sorted(range(len(queries)), key=lambda i: queries.qids[i])
        sizes = [len(results[i][0]) for i in order]
        qids = np.repeat(np.array([queries.qids[i] for i in order] or [""]), sizes) if order else np.array([])
        docids = np.concatenate([results[i][0] for i in order] or [np.array([], dtype="<U1")])
        scores = np.concatenate([results[i][1] for i in order] or [np.array([])])
        return Run.from_unique_ranked(qids, docids, scores, name=self.name, queries=queries)


def _build(mode: str, context: Context | None, model: str, index: str | None, k: int, max_length: int,
           doc_top_k: int, query_top_k: int, batch_size: int, threads: int, precision: str) -> SparseRetriever:
    name = "splade" if mode == "full" else "splade_if"
    enc_args = dict(batch_size=batch_size, precision=precision, query_top_k=query_top_k)
    if index is not None:
        return SparseRetriever.load(index, mode=mode, k=k, threads=threads,
                                    model=None if model == DEFAULT_MODEL else model, **enc_args)
    if context is None or context.collection is None:
        raise InputError(f"{name} needs a collection or a saved index", fix="pass --collection or index=FOLDER")
    return SparseRetriever.from_collection(context.collection, model=model, mode=mode, cache_dir=context.cache_dir,
                                           k=k, threads=threads, max_length=max_length, doc_top_k=doc_top_k,
                                           **enc_args)


@register("splade", kind="retriever")
def build_splade(context: Context | None = None, model: str = DEFAULT_MODEL, index: str | None = None,
                 k: int = 1000, max_length: int = 256, doc_top_k: int = 256, query_top_k: int = 64,
                 batch_size: int = 16, threads: int = 0, precision: str = "auto") -> SparseRetriever:
    """SPLADE (queries expanded by the model) over the context's collection (expansions cached) or a saved index."""
    return _build("full", context, model, index, k, max_length, doc_top_k, query_top_k, batch_size, threads,
                  precision)


@register("splade_if", kind="retriever")
def build_splade_if(context: Context | None = None, model: str = DEFAULT_MODEL, index: str | None = None,
                    k: int = 1000, max_length: int = 256, doc_top_k: int = 256, batch_size: int = 16,
                    threads: int = 0, precision: str = "auto") -> SparseRetriever:
    """Inference-free SPLADE: documents expanded by the model, queries as corpus-idf-weighted tokens."""
    return _build("idf", context, model, index, k, max_length, doc_top_k, 64, batch_size, threads, precision)
