"""BM25 first stage over bm25s (sparse-matrix BM25) with PyStemmer stemming.

Why bm25s: it scores 10^4 queries/s on a CPU from Python, against a few hundred for a JVM bridge, and
its Lucene variant is Pyserini's formula. What Pyserini does differently is analysis: with
``tokenizer="lucene", stopwords="lucene", stemmer="lucene-porter"`` (:mod:`.bm25_analyzer`) the terms
are Anserini's, token for token, and ``norms="lucene"`` (:mod:`.bm25_norms`) adds Lucene's one-byte
document lengths (benchmarks/bm25.md). rankstack adds: a Stage interface, title+text fields, an
atomic on-disk index with a verified manifest that records the analyzer, and the canonical
(trec_eval) run order, built for the whole batch at once (:mod:`.bm25_topk`).
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
from rankstack.retrieve.bm25_analyzer import (LUCENE_STOPWORDS, LucenePorterStemmer, analyze_all,
                                              make_lucene_analyzer)
from rankstack.retrieve.bm25_norms import lucene_norm_scores
from rankstack.retrieve.bm25_params import (ANALYZER_KEYS, FIELDS, LEGACY_DEFAULTS, LUCENE_PORTER,  # noqa: F401
                                            METHODS, NORMS, TOKEN_PATTERN, TOKENIZERS, check_analyzer,
                                            check_params, check_text_params)
from rankstack.retrieve.bm25_topk import (block_topk, canonical_columns, restrict_to_input, run_from_canonical,
                                           run_from_results, term_matrix, weighted_topk)
from rankstack.storage import (atomic_directory, atomic_write_text, fingerprint, read_consistently,
                               read_manifest, write_manifest)
from rankstack.types import Run, WeightedQueries

__all__ = ["BM25Retriever", "BM25Params", "ANALYZER_KEYS"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
KIND = "bm25-index"

def _bm25s():
    """Import bm25s and undo its import-time ``setLevel(DEBUG)``, which floods the console."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.WARNING)
    return bm25s


class BM25Params(dict):
    """The parameters that define an index (and so its cache key)."""


class BM25Retriever(Stage):
    """BM25 over a document collection. Build with ``from_collection`` or ``load``.

    ``tokenizer`` is "regex" (bm25s's, ``token_pattern`` words) or "lucene" (Lucene's StandardTokenizer
    and possessive filter, as Pyserini); ``stemmer`` is a Snowball algorithm name for PyStemmer
    ("english", "porter", ...), "lucene-porter" (Lucene's PorterStemFilter) or None; ``stopwords`` is
    "en" (bm25s's English list), "lucene" (Lucene's 33 English stopwords), None, or a list of words;
    ``norms`` is "exact" or "lucene" (Lucene's one-byte document lengths; the default for
    ``method="lucene"``, "exact" for the other variants). The defaults are Anserini's
    BEIR configuration (Pyserini's figures to 0.001 on the shared collections); the former defaults are
    ``tokenizer="regex", stopwords="en", stemmer="english", norms="exact"``.
    """

    def __init__(self, k1: float = 0.9, b: float = 0.4, method: str = "lucene",
                 stopwords: str | list[str] | None = "lucene", stemmer: str | None = LUCENE_PORTER,
                 fields: Sequence[str] = FIELDS, k: int = 1000, threads: int = 0,
                 token_pattern: str = TOKEN_PATTERN, tokenizer: str = "lucene", norms: str | None = None) -> None:
        check_params(k1, b, method, fields)
        norms = ("lucene" if method == "lucene" else "exact") if norms is None else norms  # one-byte: Lucene's only
        check_text_params(stopwords, stemmer, token_pattern, tokenizer, norms, method)
        for name, value, low in (("k", k, 1), ("threads", threads, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InputError(f"bm25: {name} must be an integer >= {low}, got {value!r}")
        self.params = BM25Params(k1=float(k1), b=float(b), method=method,
                                 stopwords=stopwords if stopwords is None or isinstance(stopwords, str)
                                 else list(stopwords),
                                 stemmer=stemmer, fields=list(fields), token_pattern=token_pattern,
                                 tokenizer=tokenizer, norms=norms)
        self.k = k
        self.threads = threads
        self._model: Any = None
        self._docids: np.ndarray | None = None
        self.name = "bm25"

    # tokenisation -------------------------------------------------------------------------
    def _stemmer(self):
        if not self.params["stemmer"]:
            return None
        if self.params["stemmer"] == LUCENE_PORTER:
            if getattr(self, "_lucene_porter", None) is None:  # one per index: it caches every word's stem
                self._lucene_porter = LucenePorterStemmer()
            return self._lucene_porter
        import Stemmer

        try:
            return Stemmer.Stemmer(self.params["stemmer"])
        except KeyError:
            raise InputError(f"bm25: unknown stemmer {self.params['stemmer']!r}",
                             fix=f"choose one of {Stemmer.algorithms()}") from None

    def _stopwords(self) -> Any:
        words = self.params["stopwords"]
        if words == "lucene":
            return sorted(LUCENE_STOPWORDS)
        if self.params["tokenizer"] == "lucene" and words in ("en", "english"):
            from bm25s.stopwords import STOPWORDS_EN

            return STOPWORDS_EN
        return words

    def _tokenize(self, texts: list[str], progress: bool = False) -> list[list[str]]:
        if self.params["tokenizer"] == "lucene":
            if getattr(self, "_lucene_analyze", None) is None:
                stemmer = self._stemmer()
                self._lucene_analyze = make_lucene_analyzer(
                    frozenset(self._stopwords() or ()),
                    None if stemmer is None else (stemmer.stem if hasattr(stemmer, "stem") else stemmer.stemWord))
            return analyze_all(texts, self._lucene_analyze, progress)
        return _bm25s().tokenize(texts, lower=True, stopwords=self._stopwords(),
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
        return weighted_topk(self._model, self._docids, self._doc_rank(), term_weights, k)

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
        from tqdm.auto import tqdm

        if self.params["tokenizer"] == "lucene":
            vocab: dict[str, int] = {}

            def to_ids(texts: list[str]) -> list[list[int]]:
                return [[vocab.setdefault(t, len(vocab)) for t in toks] for toks in self._tokenize(texts)]

            def get_vocab() -> dict[str, int]:
                return vocab
        else:
            from bm25s.tokenization import Tokenizer

            tokenizer = Tokenizer(lower=True, splitter=self.params["token_pattern"], stopwords=self._stopwords(),
                                  stemmer=self._stemmer())

            def to_ids(texts: list[str]) -> list[list[int]]:
                return tokenizer.tokenize(texts, update_vocab=True, return_as="ids", show_progress=False)

            get_vocab = tokenizer.get_vocab_dict
        ids: list[list[int]] = []
        docids: list[str] = []
        with tqdm(unit="doc", desc="bm25 tokenise", disable=not progress) as bar:
            for chunk in chunks:
                texts = [self._doc_text(d) for d in chunk]
                ids += to_ids(texts)
                docids += [d.docid for d in chunk]
                bar.update(len(texts))
        if not docids:
            raise InputError("bm25: cannot index an empty corpus")
        if len(set(docids)) != len(docids):
            raise InputError("bm25: document ids are not unique", fix="give every document a unique _id")
        vocab = get_vocab()
        if not any(word for word in vocab):
            raise InputError(f"bm25: none of the {len(docids)} documents has an indexable word (all are empty, "
                             "stopwords, or match no token_pattern)",
                             fix="check the corpus' title/text fields and the bm25 fields/token_pattern")
        self._fit(ids, vocab, progress=progress and len(docids) > 20000)
        del ids
        self._docids = np.array(docids)
        return self

    def index(self, documents: Iterable[Document]) -> BM25Retriever:
        docs = list(documents)
        if not docs:
            raise InputError("bm25: cannot index an empty corpus")
        texts = [self._doc_text(d) for d in docs]
        tokens = self._tokenize(texts, progress=len(texts) > 20000)
        if not any(len(t) for t in tokens):
            raise InputError(f"bm25: none of the {len(docs)} documents has an indexable word (all are empty, "
                             "stopwords, or match no token_pattern)",
                             fix="check the corpus' title/text fields and the bm25 fields/token_pattern")
        self._fit(tokens, None, progress=len(texts) > 20000)
        self._docids = np.array([d.docid for d in docs])
        return self

    def _fit(self, corpus: list[list[str]] | list[list[int]], vocab: dict[str, int] | None, progress: bool) -> None:
        """A bm25s model over token strings (``vocab`` None) or token ids; Lucene norms built here."""
        bm25s = _bm25s()
        model = bm25s.BM25(k1=self.params["k1"], b=self.params["b"], method=self.params["method"])
        if self.params["norms"] == "exact":
            if vocab is None:
                model.index(corpus, show_progress=progress)
            else:
                from bm25s.tokenization import Tokenized

                model.index(Tokenized(ids=corpus, vocab=vocab), show_progress=progress)
        else:
            if vocab is None:
                vocab = {}
                corpus = [[vocab.setdefault(t, len(vocab)) for t in doc] for doc in corpus]
            model.scores = lucene_norm_scores(corpus, max(vocab.values()) + 1, model.k1, model.b, model.dtype)
            model.vocab_dict = dict(vocab)
            model.unique_token_ids_set = set(vocab.values())
            model.nonoccurrence_array = None
        self._model = model

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
    def _retrieve(self, query_texts: Sequence[str], k: int | None) -> tuple[list[int], np.ndarray, np.ndarray, bool]:
        """Top-k matrices for the queries that have a known term, which queries those are, and whether
        each row is already in run order (ties broken by docid)."""
        self._require_index()
        k = min(k or self.k, len(self._docids))
        tokens = self._tokenize(list(query_texts))
        vocab = self._model.vocab_dict
        known = [[tok for tok in t if tok in vocab] for t in tokens]
        nonempty = [i for i, t in enumerate(known) if t]
        if not nonempty:
            return [], np.zeros((0, k), dtype=np.int64), np.zeros((0, k)), True
        known = [known[i] for i in nonempty]
        threads = self.threads if self.threads else (os.cpu_count() or 1)
        threads = threads if len(known) >= 64 else 1  # a pool only pays for itself on a large batch
        if self._model.nonoccurrence_array is None:  # lucene, robertson, atire: blocks of sparse products
            if getattr(self, "_by_term", (None,))[0] is not self._model:  # once per index
                self._by_term = (self._model, term_matrix(self._model))
            return nonempty, *block_topk(self._by_term[1], vocab, known, k, self._doc_rank(), threads), True
        else:  # bm25l, bm25+ add a score to every document: bm25s's own loop
            idx, scores = self._model.retrieve(known, k=k, return_as="tuple", show_progress=len(known) > 2000,
                                               n_threads=threads if threads > 1 else 0)
        return nonempty, np.asarray(idx), np.asarray(scores), False

    def search(self, query_texts: Sequence[str], k: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Top-``k`` (docids, scores) per query; documents matching no query term are left out."""
        nonempty, idx, scores, ordered = self._retrieve(query_texts, k)
        out: list[tuple[np.ndarray, np.ndarray]] = [(np.array([], dtype="<U1"), np.array([]))] * len(query_texts)
        if not nonempty:
            return out
        keys = [f"{row:012d}" for row in range(len(nonempty))]  # keeps the input order through the qid sort
        _, docids, sc = canonical_columns(idx, scores, keys, self._docids, self._doc_rank(), ordered)
        bounds = np.r_[0, np.cumsum((scores > 0).sum(axis=1))]
        for row, i in enumerate(nonempty):
            out[i] = (docids[bounds[row]:bounds[row + 1]], sc[bounds[row]:bounds[row + 1]])
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
            check_analyzer(queries, self.analyzer)
            results = self.search_weighted(queries.term_weights)
            queries = queries.plain()
            run = run_from_results(results, queries, "bm25")
        else:  # the whole batch at once: no per-query arrays, columns canonical by construction
            by_qid = sorted(range(len(queries)), key=lambda i: queries.qids[i])  # rows come out in qid order
            nonempty, idx, top, ordered = self._retrieve([queries.texts[i] for i in by_qid], None)
            run = run_from_canonical(*canonical_columns(idx, top, [queries.qids[by_qid[i]] for i in nonempty],
                                                        self._docids, self._doc_rank(), ordered), "bm25", queries)
        if isinstance(inp, Run) and not weighted:  # as a reranker stage: keep only the input's documents
            run = restrict_to_input(run, inp)
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
                           libraries=["bm25s", "PyStemmer", "numpy"]
                           + (["regex"] if self.params["tokenizer"] == "lucene" else []),
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
                            token_pattern=p["token_pattern"],
                            # indexes saved before these options existed were regex-tokenised, exact norms
                            tokenizer=p.get("tokenizer", LEGACY_DEFAULTS["tokenizer"]),
                            norms=p.get("norms", LEGACY_DEFAULTS["norms"]))
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


def _cache_key(collection: Collection, params: dict) -> str:
    """Keyed by the corpus *content* (never its mtime) and every index parameter."""
    import hashlib

    # options at their pre-option values stay out of the key, so indexes cached before they existed are reused
    params = {key: value for key, value in params.items() if LEGACY_DEFAULTS.get(key, object()) != value}
    raw = json.dumps({"corpus": fingerprint(collection.corpus_path), "format": FORMAT_VERSION, **params},
                     sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


@register("bm25", kind="retriever")
def build_bm25(context: Context | None = None, k1: float = 0.9, b: float = 0.4, method: str = "lucene",
               stopwords: str | list[str] | None = "lucene", stemmer: str | None = LUCENE_PORTER,
               fields: Sequence[str] = FIELDS, k: int = 1000, threads: int = 0,
               token_pattern: str = TOKEN_PATTERN, index: str | None = None, tokenizer: str | None = None,
               norms: str | None = None) -> BM25Retriever:
    """BM25 over the context's collection (or a saved ``index``); cached on disk when a cache folder is set.

    ``tokenizer``/``norms`` default to the saved index's (with ``index``) or the retriever's defaults; a
    value that contradicts the saved index is refused, since its terms were made another way.
    """
    if index is not None:
        loaded = BM25Retriever.load(index, k=k, threads=threads)
        for key, asked in (("tokenizer", tokenizer), ("norms", norms)):
            if asked is not None and asked != loaded.params[key]:
                raise InputError(f"bm25: {key}={asked!r} was asked for, but the index at {index} was built with "
                                 f"{key}={loaded.params[key]!r}", fix=f"drop {key} or rebuild the index with it")
        return loaded
    if context is None or context.collection is None:
        raise InputError("bm25 needs a collection or an index", fix="pass --collection or args.index")
    defaults = {key: value for key, value in (("tokenizer", tokenizer), ("norms", norms)) if value is not None}
    retriever = BM25Retriever(k1=k1, b=b, method=method, stopwords=stopwords, stemmer=stemmer,
                              fields=fields, k=k, threads=threads, token_pattern=token_pattern, **defaults)
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


