"""Probe (AVX2 machine): ONNX Runtime dynamic-int8 recipes for MiniLM on scifact: docs/s on 128 texts (3 interleaved
rounds) and nDCG@10 / mean cosine vs fp32 on a 2,000-doc sub-corpus (all judged + random docs)."""
import glob, statistics, time, sys
import numpy as np, onnx
from pathlib import Path
from onnxruntime.quantization import QuantType, quantize_dynamic
from rankstack.data.beir import Collection
from rankstack.encode.base import cached_encode
from rankstack.encode.sentence_transformers import SentenceTransformerEncoder, minilm_path
from rankstack.encode.onnx_export import ort_session
from rankstack.evaluate import evaluate
from rankstack.retrieve.dense import DenseIndex, DenseRetriever

cache = Path(".cache/rankstack")
fp32 = SentenceTransformerEncoder(minilm_path(), precision="fp32", threads=2, progress=False)
cur = fp32.with_path("onnx-int8")
fused = glob.glob(".cache/rankstack/onnx/token-states-fp32-*/model.onnx")[0]
g = onnx.load(fused, load_external_data=False).graph
ffn2 = [n.name for n in g.node if n.op_type == "MatMul" and "/output/dense" in n.name and "attention" not in n.name]
att = [n.name for n in g.node if n.op_type == "Attention"]
variants = {
    "rr1": dict(reduce_range=True),
    "u8u8": dict(weight_type=QuantType.QUInt8),
    "keep-ffn2": dict(nodes_to_exclude=ffn2),
    "keep-attn": dict(nodes_to_exclude=att),
}
encs = {"fp32": fp32, "onnx-int8": cur}
for name, kw in variants.items():
    p = Path(f"/tmp/q/int8-{name}.onnx")
    if not p.exists():
        args = dict(weight_type=QuantType.QInt8, per_channel=True, extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        args.update(kw)
        quantize_dynamic(fused, str(p), **args)
    e = fp32.with_path("onnx-int8"); e._runner = ort_session(p, 2)
    encs[name] = e
coll = Collection("scifact")
docs = list(coll.corpus()); texts = [d.contents for d in docs]; ids = [d.docid for d in docs]
queries, qrels = coll.queries("test"), coll.qrels("test")
rng = np.random.default_rng(0)
subset = [texts[i] for i in rng.choice(len(texts), 128, replace=False)]
for e in encs.values(): e.encode(subset[:32])
times = {n: [] for n in encs}
for r in range(3):
    for n, e in encs.items():
        t = time.perf_counter(); e.encode(subset); times[n].append(len(subset) / (time.perf_counter() - t))
rows = rng.choice(len(texts), 500, replace=False)
sub = [texts[i] for i in rows]
ref = fp32.encode(sub)
for n, e in encs.items():
    v = e.encode(sub)
    cos = float(np.mean(np.sum(v * ref, axis=1)))
    print(f"{n:10s} docs/s {statistics.median(times[n]):6.1f} x fp32 {statistics.median(times[n])/statistics.median(times['fp32']):.2f} "
          f"mean cos vs fp32 (500 docs) {cos:.5f} min {float(np.min(np.sum(v * ref, axis=1))):.4f}", flush=True)
