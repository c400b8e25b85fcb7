"""Probe (AVX2 machine, eighth session): which matrix products make the reranker's dynamic int8 lossy?

Quantises the fused fp32 ONNX graph of a trained cross-encoder with the recipe of
rankstack.encode.onnx_export._quantise, but keeps one group of MatMuls in fp32 at a time (all fused
Attention ops, all attention-output, FFN-in or FFN-out MatMuls; or all products of one layer), and reports
pairs/s and the Pearson of the scores with the fp32 graph's over BM25 pairs of scifact test queries.

    python benchmarks/inference_results/probes/probe_int8_sensitivity.py .cache/models/ce-scifact-amd
"""
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic

sys.path.insert(0, "benchmarks")
from bench_rerank import OUT, _reranker, first_stage  # noqa: E402

from rankstack.data.beir import Collection  # noqa: E402
from rankstack.encode.onnx_export import ort_session  # noqa: E402

model = sys.argv[1] if len(sys.argv) > 1 else ".cache/models/ce-scifact-amd"
work = Path(sys.argv[2] if len(sys.argv) > 2 else "/tmp/q/sens")
work.mkdir(parents=True, exist_ok=True)
coll = Collection("scifact")
bm25 = first_stage("scifact", "test", "bm25", 100, OUT)
sub = bm25.restrict(bm25.query_ids[:30]).top_k(20)
q = [sub.queries[x] for x in sub.qids]
d = coll.doc_texts(sub.docids)
rr = _reranker(model, coll, precision="onnx-fp32", batch_size=16, threads=2)
runner = rr._runner
fused = str(runner.path)
graph = onnx.load(fused, load_external_data=False).graph
names = [n.name for n in graph.node if n.op_type in ("MatMul", "Attention", "Gemm")]
head = [n for n in names if any(k in n.lower() for k in ("pooler", "classifier", "logits"))]
head += [f"{n}_MatMul" for n in head]
groups = {
    "recipe (head fp32)": [],
    "+ Attention (QKV) fp32": [n for n in names if n.startswith("Attention")],
    "+ attention-output fp32": [n for n in names if "attention/output/dense" in n],
    "+ FFN-in fp32": [n for n in names if "intermediate/dense" in n],
    "+ FFN-out fp32": [n for n in names if "/output/dense" in n and "attention" not in n],
}
for layer in range(6):
    groups[f"+ layer {layer} fp32"] = [n for n in names if f"layer.{layer}/" in n or n == f"Attention_{layer}"]
order = np.argsort(-rr.pair_lengths(q, d))
batches = []
for s in range(0, len(q), 16):
    idx = order[s:s + 16]
    enc = runner.tokenizer([q[i] for i in idx], [d[i] for i in idx], truncation="longest_first",
                           max_length=rr.max_length, padding=True, return_tensors="np")
    batches.append((idx, {k: np.asarray(enc[k], dtype=np.int64) for k in runner.input_names}))


def score(session):
    out = np.zeros(len(q))
    for idx, feed in batches:
        out[idx] = session.run(None, feed)[0][:, 0]
    return out


sessions = {"fp32": ort_session(fused, 2)}
for label, keep in groups.items():
    path = work / f"v{len(sessions)}.onnx"
    quantize_dynamic(fused, str(path), weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=head + keep,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    sessions[label] = ort_session(path, 2)
times = {k: [] for k in sessions}
scores = {}
for rnd in range(3):
    for label, sess in sessions.items():
        t = time.perf_counter()
        scores[label] = score(sess)
        times[label].append(time.perf_counter() - t)
rows = {}
for label in sessions:
    pps = len(q) / statistics.median(times[label])
    r = float(np.corrcoef(scores[label], scores["fp32"])[0, 1])
    rows[label] = {"pairs_per_s": pps, "x_onnx_fp32": pps / (len(q) / statistics.median(times["fp32"])), "pearson": r}
    print(f"| {label} | {pps:.1f} | {rows[label]['x_onnx_fp32']:.2f} | {r:.5f} |", flush=True)
(work / "sensitivity.json").write_text(json.dumps(rows, indent=1))
