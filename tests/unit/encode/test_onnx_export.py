"""ONNX exports are cached artefacts: fused graph, reused while model and libraries are unchanged,
rebuilt when the folder is corrupt or the weights change; int8 keeps the head in fp32."""

from __future__ import annotations

import numpy as np
import pytest

from tests.fixtures.models import make_tiny_bert

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from rankstack.encode import onnx_export as ox  # noqa: E402
from rankstack.encode.paths import quantize_linear_int8  # noqa: E402

NAMES = ["input_ids", "attention_mask", "token_type_ids"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from transformers import AutoModelForSequenceClassification

    path = make_tiny_bert(tmp_path_factory.mktemp("tiny_export") / "m")
    return AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1).eval()


def feeds(n=3, length=7):
    ids = np.random.default_rng(0).integers(5, 40, (n, length)).astype(np.int64)
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}


def test_export_is_fused_cached_and_exact(model, tmp_path, monkeypatch):
    fp = ox.weights_fingerprint(model)
    path = ox.onnx_model(model, NAMES, "sequence-classification", "fp32", tmp_path, fp, source="m")
    from rankstack.storage import read_manifest

    manifest = read_manifest(path.parent, ox.KIND, (ox.FORMAT_VERSION,))
    assert manifest["params"]["fused_operators"].get("Attention") == 2  # one fused attention per layer
    f = feeds()
    with torch.inference_mode():
        ref = model(**{k: torch.from_numpy(v) for k, v in f.items()}).logits.numpy()
    np.testing.assert_allclose(ox.ort_session(path, 1).run(None, f)[0], ref, atol=1e-4)

    def boom(*a, **k):
        raise AssertionError("re-exported although the cache was valid")

    monkeypatch.setattr(ox, "_export", boom)
    assert ox.onnx_model(model, NAMES, "sequence-classification", "fp32", tmp_path, fp, source="m") == path
    monkeypatch.undo()
    path.write_bytes(b"corrupt")  # checksum mismatch: rebuilt, not trusted
    again = ox.onnx_model(model, NAMES, "sequence-classification", "fp32", tmp_path, fp, source="m")
    np.testing.assert_allclose(ox.ort_session(again, 1).run(None, f)[0], ref, atol=1e-4)


def test_key_follows_weights_and_variant(model):
    other = type(model)(model.config)
    assert ox.weights_fingerprint(other) != ox.weights_fingerprint(model)
    k = ox.export_key("fp", "src", "sequence-classification", "fp32")
    assert k != ox.export_key("fp", "src", "sequence-classification", "int8")
    assert k != ox.export_key("fp2", "src", "sequence-classification", "fp32")


def test_int8_keeps_head_and_pooler_fp32(model, tmp_path):
    q = quantize_linear_int8(model)
    assert isinstance(q.classifier, torch.nn.Linear) and isinstance(q.bert.pooler.dense, torch.nn.Linear)
    assert not isinstance(q.bert.encoder.layer[0].attention.self.query, torch.nn.Linear)  # quantised
    assert isinstance(model.bert.encoder.layer[0].attention.self.query, torch.nn.Linear)  # original untouched
    path = ox.onnx_model(model, NAMES, "sequence-classification", "int8", tmp_path, ox.weights_fingerprint(model))
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} & ops or "QAttention" in ops
    assert "MatMul" in ops or "Gemm" in ops  # the head stayed a float product
