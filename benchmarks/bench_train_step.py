"""Training-step throughput of the MiniLM cross-encoder at different batch sizes (results: benchmarks/rerank.md §5).

    python benchmarks/bench_train_step.py --threads 2 --pairs 64 32 16 8

One forward + backward + AdamW step under bf16 autocast on synthetic pairs that fill the max length;
prints pairs/s per step (the first step is warm-up). Small batches ran faster per pair on a 2-core
CPU, which is why the reranker recipe uses micro-batches with gradient accumulation.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from rankstack.rerank.cross_encoder import CrossEncoderReranker


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--pairs", type=int, nargs="+", default=[64, 32, 16, 8])
    p.add_argument("--max-length", type=int, default=192)
    p.add_argument("--steps", type=int, default=4)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for n in args.pairs:
        r = CrossEncoderReranker("minilm", max_length=args.max_length)
        model, tok = r.model, r.tokenizer
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
        feats = tok(["a claim about protein folding in cells"] * n, ["word " * 400] * n, truncation="longest_first",
                    max_length=args.max_length, padding=True, return_tensors="pt")
        speeds = []
        for _ in range(args.steps):
            t = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = model(**feats).logits
            out.float().pow(2).mean().backward()
            opt.step()
            opt.zero_grad()
            speeds.append(n / (time.perf_counter() - t))
        print(f"{n:4d} pairs/step: median {statistics.median(speeds[1:]):.1f} pairs/s "
              f"({', '.join(f'{s:.1f}' for s in speeds)})", flush=True)


if __name__ == "__main__":
    main()
