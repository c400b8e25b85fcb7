"""Engine: local vs Ray give bit-identical vectors, pair scores and evaluations; failures are retried, then named.

One module-scoped local Ray cluster (2 CPUs) serves every test here; Ray is skipped when absent.
"""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.engine import BatchFailed, ExecutionOptions, get_executor
from rankstack.errors import InputError
from tests.fixtures.models import WORDS, make_tiny_bert
from tests.unit.encode.test_base import make_tiny_st

ray = pytest.importorskip("ray")

TEXTS = [" ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(1 + (i * 5) % 17)) for i in range(41)]


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=80 * 1024 * 1024,
             runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("engine_models")
    return {"st": str(make_tiny_st(root / "st")), "ce": str(make_tiny_bert(root / "ce"))}


def _ray_executor(**kw):
    return get_executor(ExecutionOptions(execution="ray", workers=2, progress=False, **kw))


def test_local_executor_encodes_like_the_encoder(models):
    from rankstack.encode.base import load_encoder

    opts = {"precision": "fp32", "threads": 1}
    local = get_executor("local", progress=False).encode(models["st"], TEXTS, batch_size=4, options=opts)
    direct = load_encoder(models["st"], batch_size=4, **opts).encode(TEXTS)
    assert local.shape == (len(TEXTS), 32) and local.dtype == np.float32
    assert np.array_equal(local, direct)  # bitwise: the same batches through the same forward


def test_local_executor_scores_like_the_reranker(models):
    from rankstack.engine import attach_pair_executor
    from rankstack.engine.pairs import reranker_spec
    from rankstack.rerank.cross_encoder import CrossEncoderReranker

    queries, docs = TEXTS[:23], TEXTS[5:28]
    ce = CrossEncoderReranker(models["ce"], batch_size=4, precision="fp32", threads=1, max_length=32)
    direct = ce.score(queries, docs)
    attach_pair_executor(ce, reranker_spec(models["ce"], max_length=32, batch_size=4, precision="fp32"),
                         get_executor("local", progress=False))
    assert np.array_equal(ce.score(queries, docs), direct)
    assert ce.last_stats["execution"] == "local"


def test_failing_batch_is_retried_then_named(ray_cluster, tmp_path):
    queries = ["q"] * 10
    docs = [f"doc {i}" for i in range(10)]
    docs[7] = "doc BOOM"
    keys = [f"d{i}" for i in range(10)]
    flaky = {"factory": "tests.unit.engine.fakes:FlakyScorer",
             "args": {"marker_dir": str(tmp_path / "a"), "fail_times": 1}}
    scores = get_executor("local", progress=False, max_retries=1).score_pairs(flaky, queries, docs, batch_size=3,
                                                                               keys=keys)
    assert len(list((tmp_path / "a").iterdir())) == 2  # failed once, then succeeded
    assert scores[7] == 1 + 0.5 * len("doc BOOM")
    broken = {"factory": "tests.unit.engine.fakes:FlakyScorer",
              "args": {"marker_dir": str(tmp_path / "b"), "fail_times": 99}}
    with pytest.raises(BatchFailed, match=r"batch \d+ \(ids .*d7.*\) failed after 2 attempt"):
        _ray_executor(max_retries=1).score_pairs(broken, queries, docs, batch_size=3, keys=keys)
    assert len(list((tmp_path / "b").iterdir())) >= 2  # the Ray worker tried twice


def test_evaluate_runs_ray_equals_local(ray_cluster, tmp_path):
    from rankstack.data.trec import write_run
    from rankstack.types import Qrels, Run

    rng = np.random.default_rng(0)
    qrels = Qrels(np.array(["1", "1", "2"]), np.array(["a", "b", "c"]), np.array([1, 2, 1]))
    paths = []
    for name in ("r1", "r2", "r3"):
        qids = np.repeat(["1", "2"], 4)
        docids = np.array(list("abcd") * 2)
        write_run(Run(qids, docids, rng.normal(size=8), name=name), tmp_path / f"{name}.run")
        paths.append(str(tmp_path / f"{name}.run"))
    measures = ["nDCG@10", "AP", "RR@10"]
    local = get_executor("local", progress=False).evaluate_runs(paths, qrels, measures)
    remote = _ray_executor().evaluate_runs(paths, qrels, measures)
    assert [e.mean for e in local] == [e.mean for e in remote]
    assert [e.run_name for e in remote] == ["r1", "r2", "r3"]
    assert [e.per_query for e in local] == [e.per_query for e in remote]


def test_bad_options():
    with pytest.raises(InputError, match="execution"):
        ExecutionOptions(execution="spark")
    with pytest.raises(InputError, match="workers"):
        ExecutionOptions(workers=0)


def test_dense_retrieval_ray_equals_local_and_streams(ray_cluster, models, tmp_path):
    from rankstack.data.beir import Collection
    from rankstack.retrieve.dense import DenseRetriever
    from tests.fixtures.beir import write_beir

    coll = Collection(write_beir(tmp_path / "c"))
    queries = coll.queries("test")
    args = {"encoder": models["st"], "precision": "fp32", "batch_size": 2}
    local = DenseRetriever.from_collection(coll, **args)
    remote = DenseRetriever.from_collection(coll, executor=_ray_executor(), **args)
    chunked = DenseRetriever.from_collection(coll, chunk_size=4, **args)  # batches differ: within float tolerance
    a, b, c = local(queries), remote(queries), chunked(queries)
    assert np.array_equal(a.docids, b.docids) and np.array_equal(a.scores, b.scores)
    assert np.array_equal(a.docids, c.docids) and np.allclose(a.scores, c.scores, atol=1e-5)


def test_rerank_recipe_with_ray_writes_the_local_run(ray_cluster, models, tmp_path):
    from rankstack.data.beir import Collection
    from rankstack.data.trec import write_run
    from rankstack.recipes.reranker_apply import RerankConfig, run
    from rankstack.retrieve.bm25 import BM25Retriever
    from tests.fixtures.beir import write_beir

    coll_dir = write_beir(tmp_path / "c")
    first = (BM25Retriever.from_collection(coll_dir, stemmer=None) % 5)(
        Collection(coll_dir).queries("test"))
    write_run(first, tmp_path / "bm25.run")
    common = dict(model=models["ce"], collection=str(coll_dir), run=tmp_path / "bm25.run", k=5, precision="fp32",
                  batch_size=2, tag="ce", max_length=32)
    run(RerankConfig(out=tmp_path / "local.run", **common), progress=False)
    res = run(RerankConfig(out=tmp_path / "ray.run", execution="ray", workers=2, **common), progress=False)
    assert res.pairs > 0
    assert (tmp_path / "local.run").read_bytes() == (tmp_path / "ray.run").read_bytes()


def test_experiment_pipeline_runs_its_reranker_and_encoder_on_ray(ray_cluster, models, tmp_path):
    """``rankstack experiment --execution ray``: the same pipelines, the same runs and measures."""
    from rankstack.recipes.experiment import ExperimentConfig, run
    from tests.fixtures.beir import write_beir

    coll_dir = write_beir(tmp_path / "c")
    (tmp_path / "exp.toml").write_text(
        f'collection = "{coll_dir}"\nsplit = "test"\nmeasures = ["nDCG@10"]\nbaseline = "bm25"\n'
        '[pipelines]\nbm25 = "bm25(stemmer=None)"\n'
        f"ce = \"bm25(stemmer=None) % 5 >> reranker(model='{models['ce']}', precision='fp32', max_length=32, "
        f"batch_size=2)\"\n"
        f"dense = \"dense(encoder='{models['st']}', precision='fp32', batch_size=2)\"\n", encoding="utf-8")
    common = dict(file=tmp_path / "exp.toml", cache_dir=None, report=False)
    local = run(ExperimentConfig(out=tmp_path / "local", **common), progress=False)
    remote = run(ExperimentConfig(out=tmp_path / "ray", execution="ray", workers=2, **common), progress=False)
    for name in ("bm25", "ce", "dense"):
        a, b = local.result.runs[name], remote.result.runs[name]
        assert np.array_equal(a.docids, b.docids) and np.array_equal(a.scores, b.scores), name
    assert (tmp_path / "local" / "per_query.csv").read_bytes() == (tmp_path / "ray" / "per_query.csv").read_bytes()


def test_reranker_in_a_pipeline_takes_the_context_executor(models):
    from rankstack.registry import Context, build

    executor = get_executor("local", progress=False)
    scorer = build({"name": "reranker", "args": {"model": models["ce"], "precision": "fp32", "max_length": 32}},
                   context=Context(extras={"executor": executor}))
    assert scorer.executor is executor
    assert scorer.executor_spec == {"name": "reranker", "args": {"model": models["ce"], "batch_size": 16,
                                                                 "precision": "fp32", "threads": 1,
                                                                 "max_length": 32}}
