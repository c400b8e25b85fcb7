import sys, time, torch, numpy as np
sys.path.insert(0, "benchmarks")
from bench_rerank import first_stage
from rankstack import Collection
from transformers import AutoModelForSequenceClassification, AutoTokenizer
torch.set_num_threads(2)
M = ".cache/models/ce-scifact-v2"
coll = Collection("scifact")
bm25 = first_stage("scifact", "test", "bm25", 100)
sub = bm25.restrict(bm25.query_ids[:30]).top_k(20)
q = [sub.queries[x] for x in sub.qids]; d = coll.doc_texts(sub.docids)
tok = AutoTokenizer.from_pretrained(M)
feats = tok(q[:16], d[:16], truncation="longest_first", max_length=192, padding=True, return_tensors="pt")
models = {}
for impl in ("sdpa", "eager"):
    m = AutoModelForSequenceClassification.from_pretrained(M, attn_implementation=impl).eval().to(torch.bfloat16)
    models[impl] = m
ref = None
with torch.inference_mode():
    for r in range(4):
        for k, m in models.items():
            t = time.perf_counter()
            for _ in range(4): out = m(**feats).logits
            dt = (time.perf_counter() - t) / 4
            if r: print(r, k, round(16 / dt, 1), out[:3].flatten().tolist())
