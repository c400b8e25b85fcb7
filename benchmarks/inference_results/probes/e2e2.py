import sys, time, statistics, torch, numpy as np
sys.path.insert(0, "benchmarks")
from bench_rerank import first_stage
from rankstack import Collection
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from sentence_transformers import CrossEncoder
torch.set_num_threads(2)
M = ".cache/models/ce-scifact-v2"
coll = Collection("scifact")
bm25 = first_stage("scifact", "test", "bm25", 100)
sub = bm25.restrict(bm25.query_ids[:30]).top_k(20)
q = [sub.queries[x] for x in sub.qids]; d = coll.doc_texts(sub.docids)
tok = AutoTokenizer.from_pretrained(M)
mode = sys.argv[1]; B = int(sys.argv[2]); BK = int(sys.argv[3])
ce = CrossEncoder(M, device="cpu", max_length=192)
eager = AutoModelForSequenceClassification.from_pretrained(M).eval().to(torch.bfloat16)
import torch._inductor.config as ic
ic.freezing = True
import torch._dynamo as dy, copy
dy.config.recompile_limit = 64
m2 = copy.deepcopy(eager); m3 = copy.deepcopy(eager)
comp = torch.compile(m2, dynamic=False)
auto = torch.compile(m3, dynamic=False, mode="max-autotune")
from rankstack.rerank.cross_encoder import CrossEncoderReranker
rr = CrossEncoderReranker(M, precision="bf16-weights", batch_size=B, threads=2)
lens = np.array([len(x) for x in tok(q, d, truncation="longest_first", max_length=192)["input_ids"]])
order = np.argsort(-lens, kind="stable")
def run(model, bucket):
    out = np.empty(len(q))
    with torch.inference_mode():
        for s in range(0, len(q), B):
            idx = order[s:s + B]
            f = tok([q[i] for i in idx], [d[i] for i in idx], truncation="longest_first", max_length=192,
                    padding=True, return_tensors="pt")
            if bucket:
                L = f["input_ids"].shape[1]; T = min(192, -(-L // BK) * BK)
                n = len(idx)
                f = {k: torch.nn.functional.pad(v, (0, T - L, 0, B - n)) for k, v in f.items()}
                out[idx] = model(**f).logits.float()[:n, 0].numpy()
            else:
                out[idx] = model(**f).logits.float()[:, 0].numpy()
    return out
t = time.perf_counter(); run(comp, True); print("warm", time.perf_counter() - t, flush=True)
t = time.perf_counter(); run(auto, True); print("warm auto", time.perf_counter() - t, flush=True)
ident = torch.nn.Identity()
paths = {"ce": lambda: ce.predict(list(zip(q, d)), batch_size=32, activation_fn=ident),
         "rankstack": lambda: rr.score(q, d), "eager": lambda: run(eager, False), "static": lambda: run(comp, True), "auto": lambda: run(auto, True)}
times = {k: [] for k in paths}; outs = {}
for r in range(7):
    for k, f in paths.items():
        t = time.perf_counter(); outs[k] = f(); times[k].append(time.perf_counter() - t)
    print(r, {k: round(len(q) / v[-1], 1) for k, v in times.items()}, flush=True)
base = statistics.median(times["ce"])
for k in paths:
    print(k, round(len(q) / statistics.median(times[k]), 1), "x", round(base / statistics.median(times[k]), 2),
          "pearson", round(np.corrcoef(outs[k], outs["ce"])[0, 1], 5))
