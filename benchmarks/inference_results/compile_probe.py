import time, statistics, sys, torch, numpy as np
sys.path.insert(0, "benchmarks")
from bench_rerank import first_stage
from rankstack import Collection
from rankstack.rerank.cross_encoder import CrossEncoderReranker
from sentence_transformers import CrossEncoder
torch.set_num_threads(2)
M = ".cache/models/ce-scifact-v2"
coll = Collection("scifact")
bm25 = first_stage("scifact", "test", "bm25", 100)
sub = bm25.restrict(bm25.query_ids[:30]).top_k(20)
q = [sub.queries[x] for x in sub.qids]; d = coll.doc_texts(sub.docids)
ce = CrossEncoder(M, device="cpu", max_length=192)
ident = torch.nn.Identity()
paths = {"ce fp32": lambda: ce.predict(list(zip(q, d)), batch_size=32, activation_fn=ident)}
for bs in (16,):
    rr = CrossEncoderReranker(M, precision="bf16-weights", batch_size=bs, threads=2)
    paths[f"bf16w b{bs}"] = (lambda rr=rr: rr.score(q, d))
rrc = CrossEncoderReranker(M, precision="bf16-weights", batch_size=16, threads=2)
import torch._inductor.config as ic
ic.freezing = True
rrc.model = torch.compile(rrc.model, dynamic=True)
t = time.perf_counter(); rrc.score(q[:40], d[:40]); print("compile warmup", time.perf_counter() - t, flush=True)
paths["bf16w b16 compiled"] = lambda: rrc.score(q, d)
rrc32 = CrossEncoderReranker(M, precision="bf16-weights", batch_size=32, threads=2)
rrc32.model = rrc.model
paths["bf16w b32 compiled"] = lambda: rrc32.score(q, d)
tok = lambda: rrc.encode(q, d)
t = time.perf_counter(); tok(); print("tokenise all pairs", time.perf_counter() - t, flush=True)
times = {k: [] for k in paths}; out = {}
for r in range(5):
    for k, f in paths.items():
        t = time.perf_counter(); out[k] = np.asarray(f(), dtype=float); times[k].append(time.perf_counter() - t)
        print(r, k, len(q) / times[k][-1], flush=True)
base = len(q) / statistics.median(times["ce fp32"])
for k in paths:
    pps = len(q) / statistics.median(times[k])
    print(f"{k:24s} {pps:7.1f} pairs/s  x{pps / base:.2f}  pearson {np.corrcoef(out[k], out['ce fp32'])[0,1]:.5f}")
