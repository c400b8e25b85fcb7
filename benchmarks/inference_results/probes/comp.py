import sys, time, torch, numpy as np, os
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
B = int(sys.argv[2])
feats = tok(q[:B], d[:B], truncation="longest_first", max_length=192, padding="max_length", return_tensors="pt")
mode = sys.argv[1]
m = AutoModelForSequenceClassification.from_pretrained(M).eval().to(torch.bfloat16)
eager = m
import torch._inductor.config as ic
if mode == "static":
    ic.freezing = True; m = torch.compile(m, dynamic=False)
elif mode == "dynamic":
    ic.freezing = True; m = torch.compile(m, dynamic=True)
elif mode == "autotune":
    ic.freezing = True; m = torch.compile(m, dynamic=False, mode="max-autotune")
with torch.inference_mode():
    t = time.perf_counter(); ref = eager(**feats).logits; out = m(**feats).logits; print("warm", time.perf_counter() - t, flush=True)
    for r in range(4):
        for name, f in (("eager", eager), (mode, m)):
            t = time.perf_counter()
            for _ in range(4): out = f(**feats).logits
            dt = (time.perf_counter() - t) / 4
            print(r, name, B, round(B / dt, 1), float((out.float() - ref.float()).abs().max()), flush=True)
