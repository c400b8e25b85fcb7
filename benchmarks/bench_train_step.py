"""Training throughput of the MiniLM cross-encoder (results: benchmarks/training.md; first table: rerank.md §5).

    python benchmarks/bench_train_step.py steps --threads 2 --pairs 64 32 16 8
    python benchmarks/bench_train_step.py variants --variants base fused bucket threads1 compile --rounds 3
    python benchmarks/bench_train_step.py padding
    python benchmarks/bench_train_step.py optimizer --rounds 5

``steps``: one forward + backward + AdamW step under bf16 autocast on synthetic pairs that fill the
max length, per batch size (the first step is warm-up).

``variants``: the reranker recipe's real training loop (the shared Trainer, PairCollator with
tokenisation, PairListModel, ListNet, AdamW with the head at 10x) on real scifact training groups
(1 positive + 7 BM25 negatives from the top 30, micro-batches of 2 groups, gradient accumulation 4),
for each variant in turn, interleaved over ``--rounds``; each fit runs ``--warmup`` + ``--steps``
optimiser steps and the pairs/s of the steps after the warm-up are reported (median over rounds).
Variants: ``base`` (the recipe today: bf16 autocast where native), ``fp32``, ``fused`` (fused AdamW
step), ``bucket`` (length-bucketed micro-batches), ``compile`` (torch.compile of the forward; its
first steps compile), ``threads1`` (one torch thread), and ``+``-joined combinations
(``fused+bucket``), ``noattndrop`` (attention-probability dropout 0: torch's fused CPU attention
kernel runs instead of the unfused path that dropout needs).

``padding``: share of padded tokens in the micro-batches of one epoch, plain vs bucketed (no model).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from rankstack.rerank.cross_encoder import CrossEncoderReranker  # noqa: E402

OUT = Path(".cache/train_bench")


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor()


def steps(args: argparse.Namespace) -> None:
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


def training_groups(args: argparse.Namespace):
    """The recipe's groups for scifact train (BM25 negatives, seeded), without any model."""
    from rankstack.data.beir import Collection
    from rankstack.recipes.reranker import RerankerTrainConfig
    from rankstack.recipes.reranker_fit import prepare

    collection = Collection(args.collection)
    cfg = RerankerTrainConfig(collection=args.collection, out=Path("unused"), n_negatives=7, negative_depth=30,
                              validation=60, seed=0, cache_dir=Path(".cache/rankstack"))
    return collection, prepare(cfg, collection).groups


class TimedCollate:
    """The collator, recording when each micro-batch was collated and how many pairs it held."""

    def __init__(self, inner) -> None:
        self.inner, self.pairs, self.times = inner, [], []

    def __call__(self, groups):
        self.times.append(time.perf_counter())
        self.pairs.append(sum(len(g) for g in groups))
        return self.inner(groups)


def run_variant(name: str, collection, groups, args: argparse.Namespace) -> float:
    """Pairs/s of the micro-batches after the warm-up optimiser steps, their optimiser steps included."""
    from rankstack.recipes.reranker_data import PairCollator, PairListModel, head_prefixes, set_attention_dropout
    from rankstack.train.trainer import Trainer

    opts = set(name.split("+"))
    torch.manual_seed(0)
    r = CrossEncoderReranker("minilm", max_length=args.max_length, precision="fp32")
    if "noattndrop" in opts:
        set_attention_dropout(r.model, 0.0)
    if "frozenemb" in opts:  # the 30,522 x 384 word-embedding table: half of MiniLM's parameters
        r.model.get_input_embeddings().weight.requires_grad_(False)
    for o in opts:  # freezeN: embeddings + the bottom N blocks, as the recipe's --freeze-layers N
        if o.startswith("freeze") and o[6:].isdigit():
            from rankstack.recipes.reranker_data import freeze_bottom_layers

            freeze_bottom_layers(r.model, int(o[6:]))
    model = PairListModel(r.model)
    collate = TimedCollate(PairCollator(r.tokenizer, collection.doc_texts, args.max_length))
    total = args.warmup + args.steps
    trainer = Trainer(model, "listnet", lr=5e-5, weight_decay=0.01, warmup_ratio=0.1, max_steps=total,
                      batch_size=4 if "mb32" in opts else 2, grad_accum=2 if "mb32" in opts else 4,
                      precision="fp32" if "fp32" in opts else "auto", seed=0,
                      param_groups={p: 10.0 for p in head_prefixes(model)},
                      num_threads=1 if "threads1" in opts else args.threads, progress=False,
                      fused_optimizer="fused" in opts, compile="compile" in opts,
                      bucket_key=collate.inner.group_length if "bucket" in opts else None)
    trainer.fit(groups, collate)
    end = time.perf_counter()
    first = args.warmup * (2 if "mb32" in opts else 4)  # micro-batches per optimiser step
    return sum(collate.pairs[first:]) / (end - collate.times[first])


def variants(args: argparse.Namespace) -> None:
    collection, groups = training_groups(args)
    results: dict[str, list[float]] = {v: [] for v in args.variants}
    for rnd in range(args.rounds):
        for v in args.variants:
            speed = run_variant(v, collection, groups, args)
            results[v].append(speed)
            print(f"round {rnd + 1} {v:>16s}: {speed:.2f} pairs/s", flush=True)
    base = statistics.median(results[args.variants[0]])
    print(f"\n{cpu_name()}; threads {args.threads}; length {args.max_length}; load {os.getloadavg()}")
    print(f"{'variant':>16s}  median pairs/s  x {args.variants[0]}  (rounds)")
    for v, xs in results.items():
        med = statistics.median(xs)
        print(f"{v:>16s}  {med:14.2f}  {med / base:6.2f}x  ({', '.join(f'{x:.2f}' for x in xs)})")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "variants.json").write_text(json.dumps({"cpu": cpu_name(), "args": vars(args), "results": results},
                                                  indent=2, default=str))


def padding(args: argparse.Namespace) -> None:
    from rankstack.recipes.reranker_data import PairCollator
    from rankstack.train.batching import epoch_batches

    collection, groups = training_groups(args)
    r = CrossEncoderReranker("minilm", max_length=args.max_length, precision="fp32")
    collate = PairCollator(r.tokenizer, collection.doc_texts, args.max_length)
    pair_lengths = {}
    for g in groups:
        collate.group_length(g)
    memo = collate.__dict__["_lengths"]
    for key in ("plain", "bucket"):
        real = padded = 0
        batches = epoch_batches(groups, 2, np.random.default_rng(0),
                                bucket_key=collate.group_length if key == "bucket" else None)
        for b in batches:
            lengths = [memo[(g.query, d)] for g in b for d in g.docids]
            real += sum(lengths)
            padded += max(lengths) * len(lengths)
        pair_lengths[key] = (real, padded)
        print(f"{key:>6s}: {real} real tokens, {padded} computed, padding {1 - real / padded:.1%}")
    all_lengths = np.array(list(memo.values()))
    print(f"pairs at the {args.max_length}-token cap: {(all_lengths == args.max_length).mean():.1%}; "
          f"median pair length {int(np.median(all_lengths))}")


def optimizer(args: argparse.Namespace) -> None:
    """AdamW step time over MiniLM's parameters: the default (foreach) vs fused, interleaved."""
    torch.set_num_threads(args.threads)
    params = list(CrossEncoderReranker("minilm", precision="fp32").model.parameters())
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    opts = {k: torch.optim.AdamW(params, lr=1e-5, **({"fused": True} if k == "fused" else {}))
            for k in ("foreach", "fused")}
    res: dict[str, list[float]] = {k: [] for k in opts}
    for o in opts.values():
        o.step()
    for _ in range(args.rounds):
        for k, o in opts.items():
            t = time.perf_counter()
            o.step()
            res[k].append(time.perf_counter() - t)
    for k, xs in res.items():
        print(f"{k}: median {statistics.median(xs) * 1000:.0f} ms per step ({', '.join(f'{x * 1000:.0f}' for x in xs)})")
    print(f"{sum(p.numel() for p in params)} parameters; {cpu_name()}; load {os.getloadavg()}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("steps")
    s.add_argument("--pairs", type=int, nargs="+", default=[64, 32, 16, 8])
    s.add_argument("--steps", type=int, default=4)
    v = sub.add_parser("variants")
    v.add_argument("--variants", nargs="+", default=["base", "fused", "bucket", "threads1"])
    v.add_argument("--rounds", type=int, default=3)
    v.add_argument("--warmup", type=int, default=1, help="optimiser steps not timed (compile: use 2+)")
    v.add_argument("--steps", type=int, default=1, help="timed optimiser steps (4 micro-batches of 16 pairs each)")
    d = sub.add_parser("padding")
    o = sub.add_parser("optimizer")
    o.add_argument("--rounds", type=int, default=5)
    for q in (s, v, d, o):
        q.add_argument("--threads", type=int, default=2)
        q.add_argument("--max-length", type=int, default=192)
        q.add_argument("--collection", default="scifact")
    args = p.parse_args()
    {"steps": steps, "variants": variants, "padding": padding, "optimizer": optimizer}[args.cmd](args)


if __name__ == "__main__":
    main()
