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
print(feats["input_ids"].shape, feats["attention_mask"].float().mean())
base = AutoModelForSequenceClassification.from_pretrained(M).eval().to(torch.bfloat16)
class W(torch.nn.Module):
    def __init__(s, b): super().__init__(); s.b = b
    def forward(s, i, a, t): return (s.b(input_ids=i, attention_mask=a, token_type_ids=t).logits,)
m = W(base).eval()
args = (feats["input_ids"], feats["attention_mask"], feats["token_type_ids"])
torch.jit.enable_onednn_fusion(True)
with torch.inference_mode():
    tr = torch.jit.freeze(torch.jit.trace(m, args, check_trace=False))
    t = time.perf_counter()
    for _ in range(3): tr(*args)
    print("jit warm", time.perf_counter() - t)
    ref = m(*args)[0]
    for r in range(5):
        for name, f in (("eager", m), ("jit", tr)):
            t = time.perf_counter()
            for _ in range(4): out = f(*args)[0]
            dt = (time.perf_counter() - t) / 4
            print(r, name, round(16 / dt, 1), float((out.float() - ref.float()).abs().max()), flush=True)
