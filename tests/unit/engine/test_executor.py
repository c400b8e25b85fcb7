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


def test_encode_ray_equals_local_and_encoder(ray_cluster, models):
    from rankstack.encode.base import load_encoder

    opts = {"precision": "fp32", "threads": 1}
    local = get_executor("local", progress=False).encode(models["st"], TEXTS, batch_size=4, options=opts)
    remote = _ray_executor().encode(models["st"], TEXTS, batch_size=4, options=opts)
    direct = load_encoder(models["st"], batch_size=4, **opts).encode(TEXTS)
    assert remote.shape == (len(TEXTS), 32) and remote.dtype == np.float32
    assert np.array_equal(local, remote)  # bitwise
    assert np.array_equal(local, direct)


def test_rerank_ray_equals_local_bitwise(ray_cluster, models):
    from rankstack.engine import attach_pair_executor
    from rankstack.engine.pairs import reranker_spec
    from rankstack.rerank.cross_encoder import CrossEncoderReranker

    queries, docs = TEXTS[:23], TEXTS[5:28]
    ce = CrossEncoderReranker(models["ce"], batch_size=4, precision="fp32", threads=1, max_length=32)
    local = ce.score(queries, docs)
    attach_pair_executor(ce, reranker_spec(models["ce"], max_length=32, batch_size=4, precision="fp32"),
                         _ray_executor())
    remote = ce.score(queries, docs)
    assert ce.last_stats["execution"] == "ray"
    assert np.array_equal(local, remote)


def test_failing_batch_is_retried_then_named(ray_cluster, tmp_path):
    queries = ["q"] * 10
    docs = [f"doc {i}" for i in range(10)]
    docs[7] = "doc BOOM"
    flaky = {"factory": "tests.unit.engine.fakes:FlakyScorer",
             "args": {"marker_dir": str(tmp_path / "a"), "fail_times": 1}}
    scores = _ray_executor(max_retries=1).score_pairs(flaky, queries, docs, batch_size=3, keys=[f"d{i}" for i in
                                                                                            range(10)])
    assert len(list((tmp_path / "a").iterdir())) == 2  # failed once, then succeeded
    assert scores[7] == 1 + 0.5 * len("doc BOOM")
    broken = {"factory": "tests.unit.engine.fakes:FlakyScorer",
              "args": {"marker_dir": str(tmp_path / "b"), "fail_times": 99}}
    with pytest.raises(BatchFailed, match=r"batch \d+ \(ids .*d7.*\) failed after 2 attempt"):
        _ray_executor(max_retries=1).score_pairs(broken, queries, docs, batch_size=3,
                                                 keys=[f"d{i}" for i in range(10)])
    with pytest.raises(BatchFailed, match="d7"):
        get_executor("local", progress=False, max_retries=0).score_pairs(broken, queries, docs, batch_size=3,
                                                                          keys=[f"d{i}" for i in range(10)])


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
