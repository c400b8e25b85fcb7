"""MaxSim reranker: its order equals brute-force MaxSim, from a token store or from document texts."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from rankstack.data.beir import Collection  # noqa: E402
from rankstack.encode.colbert import ColBERTEncoder  # noqa: E402
from rankstack.errors import InputError  # noqa: E402
from rankstack.registry import Context  # noqa: E402
from rankstack.rerank.late_interaction import ColBERTReranker  # noqa: E402
from rankstack.retrieve.late_interaction import TokenStore  # noqa: E402
from rankstack.types import Queries, Run  # noqa: E402
from tests.fixtures.models import make_tiny_bert  # noqa: E402
from tests.unit.encode.test_colbert import reference_maxsim  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory, one_torch_thread):
    from tests.fixtures.beir import write_beir

    bert = make_tiny_bert(tmp_path_factory.mktemp("bert") / "m", head=False)
    coll = Collection(write_beir(tmp_path_factory.mktemp("coll") / "tiny"))
    enc = ColBERTEncoder(str(bert), dim=8, query_maxlen=8, doc_maxlen=24, precision="fp32")
    return bert, coll, enc


def first_stage(queries):
    docs = ["d1", "d2", "d3", "d4", "d5", "d6"]
    qids = [q for q in queries.qids for _ in docs]
    return Run(qids, docs * len(queries), np.arange(len(qids), 0, -1, dtype=float), queries=queries)


def expected_order(enc, coll, queries):
    docs = {d.docid: d.contents for d in coll.corpus()}
    out = {}
    for qid, text in zip(queries.qids, queries.texts):
        q = enc.encode_queries([text])[0]
        scores = {}
        for d, t in docs.items():
            v, _ = enc.encode_docs([t])
            scores[d] = reference_maxsim(q, [v])[0]
        out[qid] = (sorted(scores, key=lambda d: (-scores[d], [-ord(c) for c in d])), scores)
    return out


@pytest.mark.parametrize("mode", ["store", "texts"])
def test_order_equals_brute_force_maxsim(setup, mode):
    _, coll, enc = setup
    queries = coll.queries("test")
    if mode == "store":
        reranker = ColBERTReranker(enc, store=TokenStore.from_collection(enc, coll))
    else:
        reranker = ColBERTReranker(enc, documents={d.docid: d.contents for d in coll.corpus()}, batch_size=4)
    out = reranker(first_stage(queries))
    ref = expected_order(enc, coll, queries)
    for qid, docids, scores in out.groups():
        order, s = ref[qid]
        assert list(docids) == order
        np.testing.assert_allclose(scores, [s[d] for d in order], rtol=1e-4, atol=1e-5)


def test_depth_and_combine_come_from_the_base_class(setup):
    _, coll, enc = setup
    queries = Queries(("q1",), ("why do cats purr",))
    reranker = ColBERTReranker(enc, store=TokenStore.from_collection(enc, coll), depth=2, combine="rrf")
    out = reranker(first_stage(queries))
    assert out.docids.tolist()[2:] == ["d3", "d4", "d5", "d6"]  # the tail keeps its first-stage order
    assert set(out.docids.tolist()[:2]) == {"d1", "d2"}


def test_pipeline_spec(setup, tmp_path):
    from rankstack.pipeline.expression import parse_pipeline

    bert, coll, enc = setup
    ctx = Context(collection=coll, cache_dir=tmp_path)
    stage = parse_pipeline(f"bm25 % 3 >> colbert_rerank(model='{bert}', query_maxlen=8, doc_maxlen=24)", ctx)
    out = stage(coll.queries("test"))
    bm25 = parse_pipeline("bm25 % 3", ctx)(coll.queries("test"))
    assert sorted(zip(out.qids, out.docids)) == sorted(zip(bm25.qids, bm25.docids))


def test_refusals(setup, tmp_path):
    bert, coll, enc = setup
    store = TokenStore.from_collection(enc, coll)
    other = ColBERTEncoder(str(bert), dim=8, query_maxlen=8, doc_maxlen=24, seed=3)
    with pytest.raises(InputError, match="encoder"):
        ColBERTReranker(other, store=store)
    with pytest.raises(InputError, match="not in the index"):
        ColBERTReranker(enc, store=store)(Run(["q"], ["zz"], [1.0], queries=Queries(("q",), ("cats",))))
    with pytest.raises(InputError, match="needs"):
        ColBERTReranker(enc)
