"""LTR over text collections: a feature-extraction Stage and an ``ltr`` reranking Stage.

Why: LETOR-style learning to rank needs features, and a text collection has none until we compute
them for each (query, candidate) pair of a first-stage run. The features follow the classic LETOR
set ("LETOR: A Benchmark Collection for Research on Learning to Rank for Information Retrieval",
Qin, Liu, Xu, Li, 2010) reduced to what is cheap on a CPU: BM25 over the whole document, the title
only and the text only, document / title / query lengths, query-term IDF statistics, the share of
query terms the document contains, the first stage's score, rank and score relative to the query's
best, and the dense similarity when a dense stage is given. A tree model (LambdaMART) then reranks:
``bm25 % 100 >> ltr(model="scifact-ltr")``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.data.beir import Collection
from rankstack.data.letor import LetorData
from rankstack.errors import InputError
from rankstack.pipeline.stage import Stage, StageInput, queries_of
from rankstack.registry import Context, build, register
from rankstack.storage import atomic_directory, atomic_write_text, read_manifest, write_manifest
from rankstack.types import Qrels, Run

__all__ = ["FeatureExtractor", "LTRReranker", "BASE_FEATURES", "train_ltr_reranker"]

log = logging.getLogger(__name__)

KIND = "ltr-reranker"
FORMAT_VERSION = 1

BASE_FEATURES = (
    "first_stage_score", "first_stage_rank", "first_stage_ratio",
    "bm25", "bm25_title", "bm25_text", "bm25_ratio",
    "doc_len", "title_len", "query_len",
    "idf_sum", "idf_mean", "idf_max", "idf_min", "query_coverage", "idf_coverage",
)


class FeatureExtractor(Stage):
    """Turns a Run (with query texts) into a :class:`LetorData` of per-pair features.

    As a Stage it returns its input unchanged (features are read with :meth:`extract`); it exists
    as a Stage so that pipelines can be written ``first_stage >> extractor >> model``.
    ``bm25`` holds BM25Retriever parameters (defaults as the ``bm25`` first stage); ``dense`` is any
    Stage that rescores a Run (e.g. a DenseRetriever) and adds a ``dense`` feature.
    """

    def __init__(self, collection: Collection | str | Path, bm25: Mapping[str, Any] | None = None,
                 dense: Stage | None = None, dense_spec: Mapping[str, Any] | str | None = None) -> None:
        from rankstack.retrieve.bm25 import BM25Retriever

        self.collection = collection if isinstance(collection, Collection) else Collection(collection)
        self.bm25_params = dict(bm25 or {})
        self.bm25_params.pop("fields", None)
        self.dense, self.dense_spec = dense, dense_spec
        self.name = "ltr_features"
        docs = list(self.collection.corpus())
        if not docs:
            raise InputError("ltr features: the collection has no documents", path=self.collection.corpus_path)
        self._retrievers = {f: BM25Retriever(fields=fields, **self.bm25_params).index(docs)
                            for f, fields in (("bm25", ("title", "text")), ("bm25_title", ("title",)),
                                              ("bm25_text", ("text",)))}
        full = self._retrievers["bm25"]
        tokens = full.tokenize([full.document_text(d) for d in docs])
        title_tokens = full.tokenize([d.title or "" for d in docs])
        self._row = {d.docid: i for i, d in enumerate(docs)}
        self._doc_sets = [frozenset(t) for t in tokens]
        self._doc_len = np.array([len(t) for t in tokens], dtype=np.float32)
        self._title_len = np.array([len(t) for t in title_tokens], dtype=np.float32)
        df: dict[str, int] = {}
        for s in self._doc_sets:
            for t in s:
                df[t] = df.get(t, 0) + 1
        n = len(docs)
        # Lucene's BM25 idf, the idf bm25s's default ("lucene") method uses.
        self._idf = {t: math.log(1 + (n - c + 0.5) / (c + 0.5)) for t, c in df.items()}
        self._max_idf = math.log(1 + (n + 0.5) / 0.5)

    @property
    def feature_names(self) -> list[str]:
        return [*BASE_FEATURES, *(["dense"] if self.dense is not None else [])]

    def transform(self, inp: StageInput) -> Run:
        if not isinstance(inp, Run):
            raise InputError("ltr features rescore a Run", fix="put a first stage before it: bm25 % 100 >> ...")
        return inp

    def extract(self, run: Run, qrels: Qrels | None = None) -> LetorData:
        """Features of every (query, document) row of ``run``; labels from ``qrels`` (unjudged = 0)."""
        queries = queries_of(run, "ltr features")
        if len(run) == 0:
            raise InputError("ltr features: the run is empty", fix="check the first stage's output")
        unknown = [d for d in run.docids[:1000].tolist() if d not in self._row]
        if unknown:
            raise InputError(f"ltr features: document {unknown[0]!r} is not in the collection {self.collection}",
                             fix="extract features with the collection the run was retrieved from")
        full = self._retrievers["bm25"]
        feats = np.zeros((len(run), len(self.feature_names)), dtype=np.float32)
        ranks = run.ranks()
        dense_scores = self._dense_scores(run) if self.dense is not None else None
        row = 0
        for qid, docids, scores in run.groups():
            text = queries[qid]
            qtok = full.tokenize([text])[0]
            uniq = list(dict.fromkeys(qtok))
            idfs = np.array([self._idf.get(t, self._max_idf) for t in uniq] or [0.0])
            rows = np.array([self._row[d] for d in docids.tolist()])
            n = len(rows)
            sl = slice(row, row + n)
            f = feats[sl]
            f[:, 0] = scores
            f[:, 1] = ranks[sl]
            top = float(np.max(scores)) if n else 0.0
            f[:, 2] = scores / top if top > 0 else 0.0
            for col, key in ((3, "bm25"), (4, "bm25_title"), (5, "bm25_text")):
                f[:, col] = self._bm25(key, qtok)[rows]
            best = f[:, 3].max()
            f[:, 6] = f[:, 3] / best if best > 0 else 0.0
            f[:, 7] = self._doc_len[rows]
            f[:, 8] = self._title_len[rows]
            f[:, 9] = len(qtok)
            f[:, 10:14] = [idfs.sum(), idfs.mean(), idfs.max(), idfs.min()]
            for j, r in enumerate(rows.tolist()):
                present = [i for i, t in enumerate(uniq) if t in self._doc_sets[r]]
                f[j, 14] = len(present) / len(uniq) if uniq else 0.0
                f[j, 15] = idfs[present].sum() / idfs.sum() if present and idfs.sum() > 0 else 0.0
            if dense_scores is not None:
                f[:, 16] = [dense_scores.get((qid, d), 0.0) for d in docids.tolist()]
            row += n
        judged = qrels.to_dict() if qrels is not None else {}
        labels = np.array([max(0, judged.get(q, {}).get(d, 0)) for q, d in
                           zip(run.qids.tolist(), run.docids.tolist())], dtype=np.int64)
        return LetorData(run.qids.copy(), run.docids.copy(), labels, feats, name=run.name)

    def _bm25(self, key: str, qtok: list[str]) -> np.ndarray:
        return self._retrievers[key].score_all(qtok)

    def _dense_scores(self, run: Run) -> dict[tuple[str, str], float]:
        rescored = self.dense(run)
        return {(q, d): float(s) for q, d, s in zip(rescored.qids.tolist(), rescored.docids.tolist(),
                                                    rescored.scores.tolist())}

    def config(self) -> dict[str, Any]:
        return {"bm25": self.bm25_params, "dense": self.dense_spec, "features": self.feature_names}


class LTRReranker(Stage):
    """Rerank a Run by an LTR model over :class:`FeatureExtractor` features (the ``ltr`` stage)."""

    def __init__(self, extractor: FeatureExtractor, model: Any) -> None:
        if getattr(model, "n_features", None) not in (None, len(extractor.feature_names)):
            raise InputError(f"ltr: the model expects {model.n_features} features, the extractor makes "
                             f"{len(extractor.feature_names)}", fix="use the extractor the model was trained with")
        self.extractor, self.model = extractor, model
        self.name = "ltr"

    def transform(self, inp: StageInput) -> Run:
        if not isinstance(inp, Run):
            raise InputError("ltr reranks a Run", fix="put a first stage before it: bm25 % 100 >> ltr(...)")
        if len(inp) == 0:
            return inp.renamed("ltr")
        data = self.extractor.extract(inp)
        scores = self.model.predict_scores(data)
        return Run(data.qids, data.docids, scores, name="ltr", queries=inp.queries)

    def save(self, path: str | Path, *, overwrite: bool = False) -> None:
        """A folder with ``model/`` (the LTR model's own saved folder) and a manifest of the features.

        ``overwrite``: replace a saved LTR reranker (anything else at ``path`` is refused)."""
        with atomic_directory(path, overwrite=overwrite) as tmp:
            self.model.save(tmp / "model")
            atomic_write_text(tmp / "features.json", json.dumps(self.extractor.config(), indent=2) + "\n")
            write_manifest(tmp, KIND, FORMAT_VERSION, self.extractor.config())

    @classmethod
    def load(cls, path: str | Path, collection: Collection | str | Path, dense: Stage | None = None,
             context: Context | None = None) -> LTRReranker:
        from rankstack.ltr.gbdt import load_model

        path = Path(path)
        manifest = read_manifest(path, KIND, (FORMAT_VERSION,))
        cfg = manifest["params"]
        if cfg.get("dense") is not None and dense is None:
            dense = build(cfg["dense"], ("retriever", "reranker", "stage"),
                          context=context or Context(collection=collection))
        extractor = FeatureExtractor(collection, bm25=cfg.get("bm25"), dense=dense, dense_spec=cfg.get("dense"))
        if extractor.feature_names != cfg.get("features"):
            raise InputError(f"features {extractor.feature_names} differ from the saved {cfg.get('features')}",
                             path=path, fix="pass the dense stage the model was trained with")
        return cls(extractor, load_model(path / "model"))


def train_ltr_reranker(collection: Collection | str | Path, first_stage: Stage, split: str = "train",
                       model: str | Mapping[str, Any] = "lambdamart", valid_fraction: float = 0.2,
                       seed: int = 0, num_threads: int = 1, bm25: Mapping[str, Any] | None = None,
                       dense: Stage | None = None, dense_spec: Mapping[str, Any] | str | None = None,
                       extractor: FeatureExtractor | None = None) -> LTRReranker:
    """Train an ``ltr`` reranker on a collection's ``split``: features of ``first_stage``'s run,
    labels from the split's qrels, a seeded ``valid_fraction`` of queries held out for early stopping.
    """
    from rankstack.ltr.cv import build_model
    from rankstack.ltr.data import no_relevant_queries

    coll = collection if isinstance(collection, Collection) else Collection(collection)
    if not 0 < valid_fraction < 1:
        raise InputError(f"valid_fraction must be in (0, 1), got {valid_fraction!r}")
    queries = coll.queries(split)
    qrels = coll.qrels(split)
    queries = queries.subset([q for q in queries.qids if q in set(qrels.query_ids)])
    extractor = extractor or FeatureExtractor(coll, bm25=bm25, dense=dense, dense_spec=dense_spec)
    data = extractor.extract(first_stage(queries), qrels)
    qids = np.array(data.query_ids)
    rng = np.random.default_rng(seed)
    held = set(rng.choice(qids, size=max(1, int(round(valid_fraction * len(qids)))), replace=False).tolist())
    train, valid = _split(data, held)
    log.info("ltr: %d train / %d valid queries (%d / %d without a relevant candidate)", len(train.query_ids),
             len(valid.query_ids), len(no_relevant_queries(train)), len(no_relevant_queries(valid)))
    learner = build_model(model, seed=seed, num_threads=num_threads).fit(train, valid)
    return LTRReranker(extractor, learner)


def _split(data: LetorData, held: set[str]) -> tuple[LetorData, LetorData]:
    in_valid = np.isin(data.qids, np.array(sorted(held)))
    parts = []
    for keep in (~in_valid, in_valid):
        parts.append(LetorData(data.qids[keep], data.docids[keep], data.labels[keep], data.features[keep],
                               name=data.name))
    return parts[0], parts[1]


@register("ltr_features", kind="stage")
def build_features(context: Context | None = None, bm25: Mapping[str, Any] | None = None) -> FeatureExtractor:
    """The feature-extraction stage over the context's collection."""
    if context is None or context.collection is None:
        raise InputError("ltr_features needs a collection", fix="pass --collection")
    return FeatureExtractor(context.collection, bm25=bm25)


@register("ltr", kind="reranker")
def build_ltr(model: str, context: Context | None = None) -> LTRReranker:
    """Rerank with a saved LTR reranker folder (``LTRReranker.save``) over the context's collection."""
    if context is None or context.collection is None:
        raise InputError("ltr needs the collection it reranks", fix="pass --collection")
    return LTRReranker.load(model, context.collection, context=context)

