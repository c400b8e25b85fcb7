import sys, time, torch, numpy as np
sys.path.insert(0, "benchmarks")
from bench_rerank import first_stage
from rankstack import Collection
from rankstack.rerank.cross_encoder import CrossEncoderReranker
torch.set_num_threads(2)
M = ".cache/models/ce-scifact-v2"
coll = Collection("scifact")
bm25 = first_stage("scifact", "test", "bm25", 100)
sub = bm25.restrict(bm25.query_ids[:30]).top_k(20)
q = [sub.queries[x] for x in sub.qids]; d = coll.doc_texts(sub.docids)
rr = CrossEncoderReranker(M, precision="bf16-weights", batch_size=16, threads=2)
print(rr.model.config._attn_implementation)
feats = rr.encode(q[:16], d[:16]); print(feats["input_ids"].shape)
from torch.profiler import profile, ProfilerActivity
with torch.inference_mode():
    for _ in range(3): rr.model(**feats)
    t=time.perf_counter()
    for _ in range(5): rr.model(**feats)
    print("b16 fwd s", (time.perf_counter()-t)/5, "pairs/s", 16*5/(time.perf_counter()-t))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3): rr.model(**feats)
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=18))
