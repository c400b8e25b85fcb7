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
lens = np.array([len(x) for x in tok(q, d, truncation="longest_first", max_length=192)["input_ids"]])
order = np.argsort(-lens, kind="stable")
batches = []
t = time.perf_counter()
for s in range(0, len(q), 16):
    idx = order[s:s+16]
    batches.append(tok([q[i] for i in idx], [d[i] for i in idx], truncation="longest_first", max_length=192, padding=True, return_tensors="pt"))
print("tokenise", time.perf_counter() - t, [b["input_ids"].shape[1] for b in batches][::4])
m = AutoModelForSequenceClassification.from_pretrained(M).eval().to(torch.bfloat16)
with torch.inference_mode():
    for r in range(4):
        t = time.perf_counter()
        for b in batches: m(**b)
        full = time.perf_counter() - t
        t = time.perf_counter()
        for _ in range(4): m(**batches[0])
        burst = (time.perf_counter() - t) / 4
        print(r, "all batches pairs/s", round(600 / full, 1), "| first batch x4 pairs/s", round(16 / burst, 1), flush=True)
