"""rankstack: build, train, evaluate and serve neural ranking pipelines on a CPU, offline.

Re-exports only. Importing rankstack never imports torch, faiss or lightgbm: heavy backends load
when a component that needs them is built.
"""

from __future__ import annotations

from rankstack._lazy import lazy_getattr
from rankstack.errors import InputError, MissingDependencyError, RankstackError, UnknownComponentError
from rankstack.registry import Context, build, register
from rankstack.types import Qrels, Queries, Run

__version__ = "0.2.0"

_LAZY = {
    "Collection": "rankstack.data.beir",
    "read_run": "rankstack.data.trec",
    "write_run": "rankstack.data.trec",
    "read_qrels": "rankstack.data",
    "read_letor": "rankstack.data.letor",
    "evaluate": "rankstack.evaluate",
    "compare": "rankstack.evaluate",
    "Stage": "rankstack.pipeline.stage",
    "parse_pipeline": "rankstack.pipeline.expression",
    "BM25Retriever": "rankstack.retrieve.bm25",
    "DenseRetriever": "rankstack.retrieve.dense",
    "load_encoder": "rankstack.encode",
    "fuse": "rankstack.retrieve.fusion",
    "fuse_runs": "rankstack.retrieve.fusion",
    "run_experiment": "rankstack.recipes.experiment",
    "get_loss": "rankstack.losses",
    "Trainer": "rankstack.train.trainer",
    "CrossEncoderReranker": "rankstack.rerank.cross_encoder",
    "LambdaMART": "rankstack.ltr.gbdt",
    "cross_validate": "rankstack.ltr.cv",
}

__all__ = ["Queries", "Run", "Qrels", "RankstackError", "InputError", "UnknownComponentError",
           "MissingDependencyError", "Context", "build", "register", *_LAZY]

__getattr__ = lazy_getattr("rankstack", _LAZY)
