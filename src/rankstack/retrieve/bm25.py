"""BM25 first stage over bm25s (sparse-matrix BM25) with PyStemmer stemming.

Why bm25s: it scores 10^4 queries/s on a CPU from Python, against a few hundred for a JVM bridge, and
its Lucene variant reproduces Pyserini's effectiveness within tokenisation differences (see
BENCHMARKS.md). rankstack adds: a Stage interface, title+text fields, an atomic on-disk index with a
verified manifest, and the canonical (trec_eval) run order.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.data.beir import Collection, Document
from rankstack.errors import InputError
from rankstack.pipeline.stage import Stage, StageInput, queries_of
from rankstack.registry import Context, register
from rankstack.storage import (atomic_directory, atomic_write_text, fingerprint, read_consistently,
                               read_manifest, write_manifest)
from rankstack.types import Run, WeightedQueries

__all__ = ["BM25Retriever", "BM25Params", "ANALYZER_KEYS"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
KIND = "bm25-index"
METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")
FIELDS = ("title", "text")
TOKEN_PATTERN = r"(?u)\b\w\w+\b"  # bm25s's default: words of 2+ characters
ANALYZER_KEYS = ("stopwords", "stemmer", "token_pattern", "fields")  # what decides the term space


def _bm25s():
    """Import bm25s and undo its import-time ``setLevel(DEBUG)``, which floods the console."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.WARNING)
    return bm25s


def _check_params(k1: float, b: float, method: str, fields: Sequence[str]) -> None:
    if not (isinstance(k1, (int, float)) and 0 <= k1 <= 100):
        raise InputError(f"bm25: k1 must be a number in [0, 100], got {k1!r}")
    if not (isinstance(b, (int, float)) and 0 <= b <= 1):
        raise InputError(f"bm25: b must be a number in [0, 1], got {b!r}")
    if method not in METHODS:
        raise InputError(f"bm25: unknown method {method!r}", fix=f"choose one of {', '.join(METHODS)}")
    bad = [f for f in fields if f not in FIELDS]
    if bad or not fields:
        raise InputError(f"bm25: fields must be a non-empty subset of {FIELDS}, got {list(fields)}")


def _check_text_params(stopwords: Any, stemmer: Any, token_pattern: Any) -> None:
    import re

    if not isinstance(token_pattern, str) or not token_pattern:
        raise InputError(f"bm25: token_pattern must be a non-empty regular expression, got {token_pattern!r}",
                         fix=f"omit it for the default {TOKEN_PATTERN!r}")
    try:
        compiled = re.compile(token_pattern)
    except re.error as exc:
        raise InputError(f"bm25: token_pattern {token_pattern!r} is not a regular expression ({exc})") from None
    if compiled.match("") is not None:
        raise InputError(f"bm25: token_pattern {token_pattern!r} matches the empty string, so every "
                         "token would be empty", fix=f"use a pattern such as {TOKEN_PATTERN!r}")
    if stemmer is not None and not isinstance(stemmer, str):
        raise InputError(f"bm25: stemmer must be a Snowball algorithm name or None, got {stemmer!r}",
                         fix="e.g. stemmer='english' or stemmer=None")
    if stopwords is not None and not isinstance(stopwords, str) and not (
            isinstance(stopwords, (list, tuple)) and all(isinstance(w, str) for w in stopwords)):
        raise InputError(f"bm25: stopwords must be 'en', None or a list of words, got {stopwords!r}")


class BM25Params(dict):
    """The parameters that define an index (and so its cache key)."""


class BM25Retriever(Stage):
    """BM25 over a document collection. Build with ``from_collection`` or ``load``.

    ``stemmer`` is a Snowball algorithm name for PyStemmer ("english", "porter", ...) or None;
    ``stopwords`` is "en" (bm25s's English list), None, or a list of words.
    """

    def __init__(self, k1: float = 0.9, b: float = 0.4, method: str = "lucene",
                 stopwords: str | list[str] | None = "en", stemmer: str | None = "english",
                 fields: Sequence[str] = FIELDS, k: int = 1000, threads: int = 0,
                 token_pattern: str = TOKEN_PATTERN) -> None:
        _check_params(k1, b, method, fields)
        _check_text_params(stopwords, stemmer, token_pattern)
        for name, value, low in (("k", k, 1), ("threads", threads, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InputError(f"bm25: {name} must be an integer >= {low}, got {value!r}")
        self.params = BM25Params(k1=float(k1), b=float(b), method=method,
                                 stopwords=stopwords if stopwords is None or isinstance(stopwords, str)
                                 else list(stopwords),
                                 stemmer=stemmer, fields=list(fields), token_pattern=token_pattern)
        self.k = k
        self.threads = threads
        self._model: Any = None
        self._docids: np.ndarray | None = None
        self.name = "bm25"

    # tokenisation -------------------------------------------------------------------------
    def _stemmer(self):
        if not self.params["stemmer"]:
            return None
        import Stemmer

        try:
            return Stemmer.Stemmer(self.params["stemmer"])
        except KeyError:
            raise InputError(f"bm25: unknown stemmer {self.params['stemmer']!r}",
                             fix=f"choose one of {Stemmer.algorithms()}") from None

    def _tokenize(self, texts: list[str], progress: bool = False) -> list[list[str]]:
        return _bm25s().tokenize(texts, lower=True, stopwords=self.params["stopwords"],
                              stemmer=self._stemmer(), token_pattern=self.params["token_pattern"],
                              return_ids=False, show_progress=progress)

    def _doc_text(self, doc: Document) -> str:
        parts = [doc.title if f == "title" else doc.text for f in self.params["fields"]]
        return " ".join(p for p in parts if p)

    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        """Tokens exactly as this index sees them (lower-case, stopwords, stemmer, token pattern)."""
        return self._tokenize(list(texts))

    def document_text(self, doc: Document) -> str:
        """The text this index reads from ``doc`` (its configured fields joined)."""
        return self._doc_text(doc)

    def score_all(self, query_tokens: Sequence[str]) -> np.ndarray:
        """BM25 score of every indexed document (index order) for one tokenised query; 0 if no term is known.

        Feature extractors need scores of arbitrary documents, not just a top-k.
        """
        self._require_index()
        known = [t for t in query_tokens if t in self._model.vocab_dict]
        if not known:
            return np.zeros(len(self._docids), dtype=np.float32)
        return np.asarray(self._model.get_scores(known), dtype=np.float32)

    @property
    def analyzer(self) -> dict[str, Any]:
        """The parameters that decide which terms a text becomes (weighted queries must share them)."""
        return {key: self.params[key] for key in ANALYZER_KEYS}

    def search_weighted(self, term_weights: Sequence[Sequence[tuple[str, float]]],
                        k: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Top-``k`` (docids, scores) per weighted query: ``sum_t w_t * BM25(t, d)`` over the whole index.

        Why not bm25s's ``retrieve``: it scores token lists (each occurrence weight 1). The index holds
        BM25(t, d) per term as a CSC matrix, so a weighted sum is one ``bincount`` per query over the
        weighted columns (plus the weighted non-occurrence scores of bm25l/bm25+). Terms the index does
        not know score nothing; documents with score 0 are left out; ties go to the larger docid.
        """
        self._require_index()
        k = min(k or self.k, len(self._docids))
        scores_csc = self._model.scores
        data, indices, indptr = scores_csc["data"], scores_csc["indices"], scores_csc["indptr"]
        nonocc = self._model.nonoccurrence_array
        vocab, n, doc_rank = self._model.vocab_dict, len(self._docids), self._doc_rank()
        out: list[tuple[np.ndarray, np.ndarray]] = []
        for pairs in term_weights:
            known = [(vocab[t], float(w)) for t, w in pairs if t in vocab and w > 0]
            if not known:
                out.append((np.array([], dtype="<U1"), np.array([])))
                continue
            cols = np.array([c for c, _ in known], dtype=np.int64)
            weights = np.array([w for _, w in known])
            starts, ends = indptr[cols].astype(np.int64), indptr[cols + 1].astype(np.int64)
            lengths = ends - starts
            rows = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends)]) if lengths.sum() else \
                np.array([], dtype=np.int64)
            contrib = data[rows].astype(np.float64) * np.repeat(weights, lengths)
            scores = np.bincount(indices[rows], weights=contrib, minlength=n)
            if nonocc is not None:
                scores += float(np.dot(nonocc[cols], weights))
            cand = np.flatnonzero(scores > 0)
            if len(cand) > k:  # everything tied with the k-th score stays a candidate for the tie-break
                kth = np.partition(scores[cand], len(cand) - k)[len(cand) - k]
                cand = cand[scores[cand] >= kth]
            order = np.lexsort((-doc_rank[cand], -scores[cand]))[:k]
            out.append((self._docids[cand[order]], scores[cand[order]]))
        return out

    # indexing -----------------------------------------------------------------------------
    @classmethod
    def from_collection(cls, collection: Collection | str | Path, chunk_size: int | None = None,
                        **params: Any) -> BM25Retriever:
        """Index a collection; with ``chunk_size``, streamed in chunks (:meth:`index_chunks`)."""
        coll = collection if isinstance(collection, Collection) else Collection(collection)
        retriever = cls(**params)
        if chunk_size is not None:
            return retriever.index_chunks(coll.corpus_chunks(chunk_size))
        retriever.index(coll.corpus())
        return retriever

    def index_chunks(self, chunks: Iterable[Sequence[Document]], progress: bool = True) -> BM25Retriever:
        """Index a stream of document chunks, keeping only token ids and document ids between chunks.

        Why: :meth:`index` holds every document and its token strings at once (several GB at 1M
        passages); here each chunk's texts are dropped once bm25s's ``Tokenizer`` has turned them into
        ids over a growing vocabulary. Tokens, and so every score and ranking, equal :meth:`index`'s
        (same lower-casing, stopwords, stemmer and pattern); only the internal term numbering differs.
        """
        bm25s = _bm25s()
        from bm25s.tokenization import Tokenized, Tokenizer
        from tqdm.auto import tqdm

        tokenizer = Tokenizer(lower=True, splitter=self.params["token_pattern"], stopwords=self.params["stopwords"],
                              stemmer=self._stemmer())
        ids: list[list[int]] = []
        docids: list[str] = []
        with tqdm(unit="doc", desc="bm25 tokenise", disable=not progress) as bar:
            for chunk in chunks:
                texts = [self._doc_text(d) for d in chunk]
                ids += tokenizer.tokenize(texts, update_vocab=True, return_as="ids", show_progress=False)
                docids += [d.docid for d in chunk]
                bar.update(len(texts))
        if not docids:
            raise InputError("bm25: cannot index an empty corpus")
        if len(set(docids)) != len(docids):
            raise InputError("bm25: document ids are not unique", fix="give every document a unique _id")
        vocab = tokenizer.get_vocab_dict()
        if not any(word for word in vocab):
            raise InputError(f"bm25: none of the {len(docids)} documents has an indexable word (all are empty, "
                             "stopwords, or match no token_pattern)",
                             fix="check the corpus' title/text fields and the bm25 fields/token_pattern")
        model = bm25s.BM25(k1=self.params["k1"], b=self.params["b"], method=self.params["method"])
        model.index(Tokenized(ids=ids, vocab=vocab), show_progress=progress and len(docids) > 20000)
        del ids
        self._model = model
        self._docids = np.array(docids)
        return self

    def index(self, documents: Iterable[Document]) -> BM25Retriever:
        bm25s = _bm25s()
        docs = list(documents)
        if not docs:
            raise InputError("bm25: cannot index an empty corpus")
        texts = [self._doc_text(d) for d in docs]
        tokens = self._tokenize(texts, progress=len(texts) > 20000)
        if not any(len(t) for t in tokens):
            raise InputError(f"bm25: none of the {len(docs)} documents has an indexable word (all are empty, "
                             "stopwords, or match no token_pattern)",
                             fix="check the corpus' title/text fields and the bm25 fields/token_pattern")
        model = bm25s.BM25(k1=self.params["k1"], b=self.params["b"], method=self.params["method"])
        model.index(tokens, show_progress=len(texts) > 20000)
        self._model = model
        self._docids = np.array([d.docid for d in docs])
        return self

    @property
    def num_docs(self) -> int:
        self._require_index()
        return len(self._docids)

    def _doc_rank(self) -> np.ndarray:
        """Position of each document id in string order, computed once per index, for tie-breaks."""
        if getattr(self, "_doc_rank_cache", None) is None or len(self._doc_rank_cache) != len(self._docids):
            rank = np.empty(len(self._docids), dtype=np.int64)
            rank[np.argsort(self._docids, kind="stable")] = np.arange(len(self._docids))
            self._doc_rank_cache = rank
        return self._doc_rank_cache

    def _require_index(self) -> None:
        if self._model is None:
            raise InputError("bm25: the retriever has no index yet",
                             fix="build it with BM25Retriever.from_collection(...) or load one")

    # search -------------------------------------------------------------------------------
    def search(self, query_texts: Sequence[str], k: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Top-``k`` (docids, scores) per query; documents matching no query term are left out."""
        self._require_index()
        k = min(k or self.k, len(self._docids))
        tokens = self._tokenize(list(query_texts))
        out: list[tuple[np.ndarray, np.ndarray]] = [(np.array([], dtype="<U1"), np.array([]))] * len(tokens)
        vocab = self._model.vocab_dict
        nonempty = [i for i, t in enumerate(tokens) if any(tok in vocab for tok in t)]
        if not nonempty:
            return out
        known = [[tok for tok in tokens[i] if tok in vocab] for i in nonempty]
        threads = self.threads if self.threads else (os.cpu_count() or 1)
        idx, scores = self._model.retrieve(known, k=k, return_as="tuple", show_progress=len(known) > 2000,
                                           n_threads=threads if len(known) >= 64 else 1)
        doc_rank = self._doc_rank()
        for row, i in enumerate(nonempty):
            keep = scores[row] > 0
            ids, sc = idx[row][keep], scores[row][keep].astype(np.float64)
            order = np.lexsort((-doc_rank[ids], -sc))  # trec_eval order: ties by docid descending
            out[i] = (self._docids[ids[order]], sc[order])
        return out

    def at_least(self, k: int) -> BM25Retriever:
        """This retriever with a depth of at least ``k`` (shares the index; ``self`` is unchanged)."""
        if k <= self.k:
            return self
        import copy

        deeper = copy.copy(self)
        deeper.k = k
        return deeper

    def transform(self, inp: StageInput) -> Run:
        queries = queries_of(inp, "bm25")
        weighted = isinstance(queries, WeightedQueries)
        if weighted:  # expanded queries (rm3, bo1): a fresh search of the whole index, weights used up
            _check_analyzer(queries, self.analyzer)
            results = self.search_weighted(queries.term_weights)
            queries = queries.plain()
        else:
            results = self.search(list(queries.texts))
        # emit queries in qid (string) order: bm25s already sorts each list by score, so the Run
        # usually finds its rows in canonical order and skips its own sort
        order = sorted(range(len(queries)), key=lambda i: queries.qids[i])
        sizes = [len(results[i][0]) for i in order]
        qids = np.repeat(np.array([queries.qids[i] for i in order] or [""]), sizes) if order else np.array([])
        docids = np.concatenate([results[i][0] for i in order] or [np.array([], dtype="<U1")])
        scores = np.concatenate([results[i][1] for i in order] or [np.array([])])
        run = Run.from_unique_ranked(qids, docids, scores, name="bm25", queries=queries)
        if isinstance(inp, Run) and not weighted:  # as a reranker stage: keep only the input's documents
            run = _restrict_to_input(run, inp)
        return run

    # persistence --------------------------------------------------------------------------
    def save(self, path: str | Path, overwrite: bool = False, inputs: Iterable[str | Path] = ()) -> None:
        """Write the index folder crash-safely (see :mod:`rankstack.storage`).

        Refuses a non-index folder, an index unless ``overwrite``, and any path inside ``inputs``.
        """
        self._require_index()
        with atomic_directory(path, overwrite=overwrite, inputs=inputs) as tmp:
            self._model.save(str(tmp / "bm25s"), show_progress=False)
            atomic_write_text(tmp / "docids.json", json.dumps(self._docids.tolist()))
            write_manifest(tmp, KIND, FORMAT_VERSION, dict(self.params),
                           libraries=["bm25s", "PyStemmer", "numpy"],
                           extra={"num_docs": int(len(self._docids))})

    @classmethod
    def load(cls, path: str | Path, k: int = 1000, threads: int = 0, verify: bool = True) -> BM25Retriever:
        """Load a saved index; retried if a concurrent save replaces it mid-read."""
        path = Path(path)
        return read_consistently(path, lambda: cls._load(path, k, threads, verify))

    @classmethod
    def _load(cls, path: Path, k: int, threads: int, verify: bool) -> BM25Retriever:
        bm25s = _bm25s()
        manifest = read_manifest(path, KIND, (FORMAT_VERSION,), verify=verify)
        p = manifest["params"]
        try:
            retriever = cls(k1=p["k1"], b=p["b"], method=p["method"], stopwords=p["stopwords"],
                            stemmer=p["stemmer"], fields=p["fields"], k=k, threads=threads,
                            token_pattern=p["token_pattern"])
            engine = json.loads((path / "bm25s" / "params.index.json").read_text("utf-8"))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"index parameters are incomplete or invalid ({exc})", path=path,
                             fix="rebuild the index") from None
        # the scoring parameters live in bm25s's own file too: both must agree, or the manifest lies
        for key in ("k1", "b", "method"):
            if engine.get(key) != p[key]:
                raise InputError(f"index parameter {key!r} is {p[key]!r} in the manifest but "
                                 f"{engine.get(key)!r} in the index data", path=path, fix="rebuild the index")
        retriever._model = bm25s.BM25.load(str(path / "bm25s"), show_progress=False, allow_pickle=False)
        docids = json.loads((path / "docids.json").read_text("utf-8"))
        if not isinstance(docids, list) or len(docids) != manifest.get("num_docs") or \
                len(docids) != engine.get("num_docs"):
            raise InputError(f"index lists {len(docids)} documents, manifest says {manifest.get('num_docs')}",
                             path=path, fix="rebuild the index")
        retriever._docids = np.array(docids)
        return retriever


def _check_analyzer(queries: WeightedQueries, analyzer: dict[str, Any]) -> None:
    """Refuse weighted terms made by another tokenisation: they would silently match nothing."""
    if not queries.analyzer:
        return
    diff = [key for key in ANALYZER_KEYS if key in queries.analyzer and queries.analyzer[key] != analyzer[key]]
    if diff:
        shown = ", ".join(f"{key}={queries.analyzer[key]!r} vs {analyzer[key]!r}" for key in diff)
        raise InputError(f"bm25: the expanded queries were tokenised differently from this index ({shown})",
                         fix="give the expansion stage (rm3, bo1) the same " + "/".join(diff) + " as bm25")


def _restrict_to_input(run: Run, inp: Run) -> Run:
    pairs_in = set(zip(inp.qids.tolist(), inp.docids.tolist()))
    keep = np.array([(q, d) in pairs_in for q, d in zip(run.qids.tolist(), run.docids.tolist())], dtype=bool)
    return run.replace(qids=run.qids[keep], docids=run.docids[keep], scores=run.scores[keep])


def _cache_key(collection: Collection, params: dict) -> str:
    """Keyed by the corpus *content* (never its mtime) and every index parameter."""
    import hashlib

    raw = json.dumps({"corpus": fingerprint(collection.corpus_path), "format": FORMAT_VERSION, **params},
                     sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


@register("bm25", kind="retriever")
def build_bm25(context: Context | None = None, k1: float = 0.9, b: float = 0.4, method: str = "lucene",
               stopwords: str | list[str] | None = "en", stemmer: str | None = "english",
               fields: Sequence[str] = FIELDS, k: int = 1000, threads: int = 0,
               token_pattern: str = TOKEN_PATTERN, index: str | None = None) -> BM25Retriever:
    """BM25 over the context's collection (or a saved ``index``); cached on disk when a cache folder is set."""
    if index is not None:
        return BM25Retriever.load(index, k=k, threads=threads)
    if context is None or context.collection is None:
        raise InputError("bm25 needs a collection or an index", fix="pass --collection or args.index")
    retriever = BM25Retriever(k1=k1, b=b, method=method, stopwords=stopwords, stemmer=stemmer,
                              fields=fields, k=k, threads=threads, token_pattern=token_pattern)
    coll = context.collection
    if context.cache_dir is not None:
        where = Path(context.cache_dir) / "bm25" / _cache_key(coll, dict(retriever.params))
        if where.is_dir():
            try:
                return BM25Retriever.load(where, k=k, threads=threads)
            except InputError as exc:
                log.warning("ignoring unreadable cached index %s: %s", where, exc)
        retriever.index(coll.corpus())
        retriever.save(where, overwrite=True)
        return retriever
    return retriever.index(coll.corpus())


