"""The arithmetic ceiling of this CPU for MiniLM-sized transformers: how much faster *can* any path be?

Why: issue 14 asks for >= 3x reranking and >= 2x encoding/training over the fp32 peers at (almost) no
quality cost. A transformer's time is dominated by matrix products, so the best any implementation of
the *same model* can do is to run all of its useful FLOPs at the CPU's matrix-product peak. This script
measures, in one run on this CPU:

1. the peak rate of the matrix products one MiniLM layer makes (Q, K, V, output, FFN in, FFN out;
   M = batch x tokens rows), in fp32 (``torch.matmul``, ``F.linear``, ONNX Runtime ``MatMul``), bf16
   (``torch.matmul`` on bf16 tensors: native on AMX / AVX-512-BF16, emulated elsewhere) and dynamic int8
   (ONNX Runtime ``quantize_dynamic``, per channel, the recipe of :mod:`rankstack.encode.onnx_export`;
   and torch's fbgemm dynamic ``Linear``), each including what the precision must pay per call (int8:
   quantising the activations) and each repeated to last >= 1 s per call, like the peers' calls (a
   0.1 s burst would catch the CPU at a boost clock the peers never see);
2. the *useful* FLOP rate the peers reach on real scifact text: ``CrossEncoder.predict`` fp32 on BM25
   pairs, ``SentenceTransformer.encode`` fp32 on abstracts, and one fp32 training step (forward +
   backward, 3x the forward FLOPs: Kaplan et al. 2020, "Scaling Laws for Neural Language Models",
   section 2.1) of the cross-encoder. Useful FLOPs count every real (unpadded) token's matrix products
   and attention: ``layers x (L x 2 x (4h^2 + 2hi) + 4 x L^2 x h)`` for a sequence of L tokens;
3. the ceiling: peak / useful rate = the largest speed-up over the peer that any path of that precision
   could reach on this CPU if attention softmax, layer norms, GELU, tokenisation and Python cost nothing.
   It is an upper bound: real paths stay below it. Every item is timed in interleaved rounds and its
   fastest call kept (peaks and peers alike: the machine is shared, and noise only ever adds time).

Nothing here is a rankstack path: it measures the hardware and the peers, so the paths' own ratios
(bench_rerank.py speed, bench_encode.py, bench_train_step.py) can be read against what is possible.

    python benchmarks/bench_ceiling.py --threads 2 --rounds 3      # make bench-ceiling
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def interleaved_best(tasks: dict[str, object], rounds: int, once: set[str] = frozenset()) -> dict[str, float]:
    """Seconds per task: one warm-up call each, then ``rounds`` rounds calling every task in turn; the fastest
    call of each is kept. Interleaving puts the peaks and the peers under the same conditions, and the
    fastest call is the one least slowed by other processes (noise only ever adds time). Tasks in ``once``
    (an emulated precision, ~100x slower) are timed in the first round only."""
    best: dict[str, float] = {}
    for fn in tasks.values():
        fn()
    for rnd in range(rounds):
        for name, fn in tasks.items():
            if name in once and rnd > 0:
                continue
            t = time.perf_counter()
            fn()
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - t)
        print(f"round {rnd + 1}/{rounds} done", flush=True)
    return best


def layer_shapes(h: int, i: int) -> list[tuple[int, int]]:
    """(K, N) of the weight matrices one BERT layer multiplies by: Q, K, V, output, FFN in, FFN out."""
    return [(h, h)] * 4 + [(h, i), (i, h)]


def ort_matmul(k: int, n: int, threads: int, folder: Path, int8: bool):
    """An ONNX Runtime session of one MatMul (fp32, or its weight dynamic-int8 per channel); returns run(x)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from rankstack.encode.onnx_export import ort_session

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((k, n)).astype(np.float32), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["X", "W"], ["Y"], name="mm")], "mm",
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["M", k])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["M", n])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    raw, out = folder / f"mm-{k}-{n}.onnx", folder / f"mm-{k}-{n}-int8.onnx"
    onnx.save(model, str(raw))
    if int8:
        logging.getLogger().setLevel(logging.ERROR)  # the quantiser's "consider pre-processing" hint, per call
        quantize_dynamic(str(raw), str(out), weight_type=QuantType.QInt8, per_channel=True)
    session = ort_session(out if int8 else raw, threads)
    return lambda x: session.run(None, {"X": x})


def gemm_tasks(h: int, i: int, rows: int, threads: int, folder: Path) -> tuple[dict[str, object], float]:
    """Callables running one layer's six matrix products per precision / library, and their FLOPs."""
    import torch

    shapes = layer_shapes(h, i)
    flops = float(sum(2 * rows * k * n for k, n in shapes))
    rng = torch.Generator().manual_seed(0)
    tasks: dict[str, object] = {}

    def no_grad(fn):
        def run():
            with torch.inference_mode():
                fn()
        return run

    for name, dtype in (("fp32 torch.matmul", torch.float32), ("bf16 torch.matmul", torch.bfloat16)):
        xs = [torch.randn(rows, k, generator=rng).to(dtype) for k, _ in shapes]
        ws = [torch.randn(k, n, generator=rng).to(dtype) for k, n in shapes]
        tasks[name] = no_grad(lambda xs=xs, ws=ws: [x @ w for x, w in zip(xs, ws)])
    xs = [torch.randn(rows, k, generator=rng) for k, _ in shapes]
    ws = [torch.randn(n, k, generator=rng) for k, n in shapes]  # nn.Linear's layout: (out, in)
    bs = [torch.randn(n, generator=rng) for _, n in shapes]
    tasks["fp32 torch F.linear (as nn.Linear)"] = no_grad(
        lambda: [torch.nn.functional.linear(x, w, b) for x, w, b in zip(xs, ws, bs)])
    warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*deprecated")
    layers = []
    for k, n in shapes:
        lin = torch.ao.nn.quantized.dynamic.Linear(k, n, dtype=torch.qint8)
        lin.set_weight_bias(torch.quantize_per_tensor(torch.randn(n, k, generator=rng), 0.05, 0, torch.qint8), None)
        layers.append(lin)
    tasks["int8 torch dynamic Linear (fbgemm)"] = no_grad(lambda: [lin(x) for lin, x in zip(layers, xs)])
    xs_np = [x.numpy() for x in xs]
    for label, int8 in (("fp32 ONNX Runtime MatMul", False), ("int8 ONNX Runtime dynamic MatMul", True)):
        runs = [ort_matmul(k, n, threads, folder, int8) for k, n in shapes]
        tasks[label] = lambda runs=runs: [run(x) for run, x in zip(runs, xs_np)]
    return {name: lasting(fn) for name, fn in tasks.items()}, flops


def lasting(fn, seconds: float = 1.0):
    """``fn`` repeated so that one call takes >= ``seconds`` (repeats fixed from one timed call)."""
    t = time.perf_counter()
    fn()
    repeats = max(1, int(np.ceil(seconds / max(time.perf_counter() - t, 1e-6))))

    def run() -> None:
        for _ in range(repeats):
            fn()
    run.repeats = repeats
    return run


def useful_flops(lengths: np.ndarray, layers: int, h: int, i: int) -> float:
    """Matrix-product + attention FLOPs of one forward pass over sequences of these (unpadded) lengths."""
    lengths = lengths.astype(np.float64)
    return float(layers * (lengths.sum() * 2 * (4 * h * h + 2 * h * i) + (4 * lengths ** 2 * h).sum()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="minilm", help="cross-encoder folder; 'minilm': MiniLM + a fresh one-logit "
                                                      "head (speed does not depend on the weights)")
    ap.add_argument("--queries", type=int, default=10, help="scifact test queries (BM25 top --depth each)")
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--docs", type=int, default=128, help="scifact abstracts encoded by SentenceTransformer")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=16, help="rows of the GEMM probe = batch x mean tokens")
    ap.add_argument("--train-pairs", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the fastest call of each is kept")
    ap.add_argument("--json", type=Path, default=Path(".cache/rerank_bench/ceiling.json"))
    args = ap.parse_args()

    import torch
    from sentence_transformers import CrossEncoder, SentenceTransformer

    from bench_rerank import OUT, first_stage, fresh_head_model
    from rankstack.data.beir import Collection
    from rankstack.encode.sentence_transformers import minilm_path

    torch.set_num_threads(args.threads)
    coll = Collection("scifact")
    bm25 = first_stage("scifact", "test", "bm25", 100, OUT)
    sub = bm25.restrict(bm25.query_ids[: args.queries]).top_k(args.depth)
    q = [sub.queries[x] for x in sub.qids]
    d = coll.doc_texts(sub.docids)
    ce = CrossEncoder(fresh_head_model() if args.model == "minilm" else args.model, device="cpu",
                      max_length=args.max_length)
    cfg = ce.model.config
    h, i, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    tok = ce.tokenizer
    pair_ids = tok(q, d, truncation="longest_first", max_length=args.max_length)["input_ids"]
    pair_len = np.array([len(x) for x in pair_ids])

    st = SentenceTransformer(str(minilm_path()), device="cpu")
    docs = coll.doc_texts(sorted(coll.documents())[: args.docs])
    doc_ids = st.tokenizer(docs, truncation=True, max_length=st.max_seq_length)["input_ids"]
    doc_len = np.array([len(x) for x in doc_ids])

    rows = int(args.batch_size * pair_len.mean())
    print(f"CPU: {cpu_name()}; {args.threads} threads; MiniLM h={h} i={i} layers={layers}; GEMM rows {rows} "
          f"(batch {args.batch_size} x {pair_len.mean():.0f} mean tokens)", flush=True)
    identity = torch.nn.Identity()
    pairs = list(zip(q, d))
    n_train = min(args.train_pairs, len(pairs))
    batches = [tok(q[s:s + 16], d[s:s + 16], truncation="longest_first", max_length=args.max_length,
                   padding=True, return_tensors="pt") for s in range(0, n_train, 16)]

    def predict() -> None:
        with torch.inference_mode():
            ce.predict(pairs, batch_size=32, activation_fn=identity, show_progress_bar=False)

    def encode() -> None:
        with torch.inference_mode():
            st.encode(docs, batch_size=32, show_progress_bar=False)

    def train_pass() -> None:
        ce.model.train()
        for b in batches:
            ce.model(**b).logits.sum().backward()
        ce.model.zero_grad(set_to_none=True)
        ce.model.eval()

    with tempfile.TemporaryDirectory() as tmp:
        tasks, gemm_flops = gemm_tasks(h, i, rows, args.threads, Path(tmp))
        peer_tasks = {
            "CrossEncoder.predict fp32 (reranking)": (predict, useful_flops(pair_len, layers, h, i), len(pairs),
                                                      "pairs"),
            "SentenceTransformer.encode fp32 (encoding)": (encode, useful_flops(doc_len, layers, h, i), len(docs),
                                                           "docs"),
            "fp32 training step, forward + backward (training)": (
                train_pass, 3 * useful_flops(pair_len[:n_train], layers, h, i), n_train, "pairs"),
        }
        tasks.update({name: spec[0] for name, spec in peer_tasks.items()})
        from rankstack.hardware import bf16_support

        emulated = set() if bf16_support()[0] else {name for name in tasks if name.startswith("bf16")}
        seconds = interleaved_best(tasks, args.rounds, once=emulated)
    peaks = {name: gemm_flops * tasks[name].repeats / seconds[name] / 1e9 for name in tasks if name not in peer_tasks}
    for name, rate in peaks.items():
        print(f"peak {name:38s} {rate:7.1f} GFLOP/s", flush=True)
    peers = {name: (flops, seconds[name], n, unit) for name, (_, flops, n, unit) in peer_tasks.items()}

    def best(prefix: str) -> float:
        return max(rate for name, rate in peaks.items() if name.startswith(prefix))

    fp32, bf16, int8 = best("fp32"), best("bf16"), best("int8")
    print(f"\n| peer (fp32) | items/s | useful GFLOP/s | % of fp32 peak | ceiling fp32 | ceiling bf16 | ceiling int8 |")
    print("|---|---|---|---|---|---|---|")
    result = {"cpu": cpu_name(), "threads": args.threads, "rows": rows, "peaks_gflops": peaks, "peers": {}}
    for name, (flops, sec, n, unit) in peers.items():
        rate = flops / sec / 1e9
        ceil = {"fp32": fp32 / rate, "bf16": bf16 / rate, "int8": int8 / rate}
        result["peers"][name] = {"items_per_s": n / sec, "unit": unit, "useful_gflops": rate, "ceiling": ceil}
        print(f"| {name} | {n / sec:.1f} {unit}/s | {rate:.1f} | {100 * rate / fp32:.0f}% | {ceil['fp32']:.2f}x | "
              f"{ceil['bf16']:.2f}x | {ceil['int8']:.2f}x |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))
    print(f"\nceiling = the precision's peak GEMM rate / the peer's useful FLOP rate: the most any path of that "
          f"precision could gain over the peer for this model on this CPU (written to {args.json})")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
