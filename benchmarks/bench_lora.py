"""LoRA vs full fine-tuning of rerankers on scifact, on one fixed budget (results: benchmarks/lora.md).

    python benchmarks/bench_lora.py ce  --steps 30 --queries 50 --depth 20    # MiniLM: full FT vs LoRA
    python benchmarks/bench_lora.py speed --rounds 5                           # training step time, interleaved
    python benchmarks/bench_lora.py llm --steps 10 --batch 2 --negatives 1 --doc-tokens 128 --queries 10 \
        --depth 10 --zero-shot                                                 # SmolLM2 + LoRA vs BM25

``ce`` trains the MiniLM cross-encoder twice with ``recipes.reranker`` on the same data, seed, steps and
batch (so the same training pairs): every weight (lr 5e-5, 10x for the fresh head: the recipe's
defaults) and LoRA (rank 8 on query/value + the fresh head trained fully, lr 5e-4: LoRA is usually
trained at ~10x the full-fine-tuning rate, Hu et al. 2021). ``llm`` trains SmolLM2-135M-Instruct with
LoRA as a pointwise yes/no reranker (``recipes.lora_llm``). Both then rerank BM25's top ``--depth``
for a seeded subset of ``--queries`` scifact test queries (BM25 on the same subset is reported).
Training pairs/s = pairs the optimiser saw / the training loop's own seconds (first stage, model
loading and saving excluded). Writes JSON under --out and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from rankstack.data.beir import Collection  # noqa: E402
from rankstack.evaluate import evaluate  # noqa: E402
from rankstack.registry import Context, build  # noqa: E402
from rankstack.rerank.base import combine_scores  # noqa: E402
from rankstack.types import Run  # noqa: E402

CACHE = Path(".cache/rankstack")


def cpu() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    return next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")),
                platform.processor())


def subset(coll: Collection, n: int | None, seed: int = 0) -> list[str]:
    qids = sorted(coll.queries("test").qids)
    if n is None or n >= len(qids):
        return qids
    rng = np.random.default_rng(seed)
    return sorted(qids[i] for i in rng.choice(len(qids), n, replace=False))


def bm25_top(coll: Collection, qids: list[str], depth: int) -> Run:
    queries = coll.queries("test").subset(qids)
    ctx = Context(collection=coll, cache_dir=CACHE)
    return (build("bm25", "retriever", context=ctx) % depth)(queries)


def interpolate(reranked: Run, first: Run, alpha: float = 0.5) -> Run:
    """z-score interpolation of the reranker with BM25 (the same scores, no rescoring)."""
    fs = {q: dict(zip(d.tolist(), s.tolist())) for q, d, s in first.groups()}
    qids, docids, scores = [], [], []
    for q, d, s in reranked.groups():
        f = np.array([fs[q][x] for x in d.tolist()])
        qids += [q] * len(d)
        docids += d.tolist()
        scores += combine_scores(s, f, d, "interpolate", alpha, "zscore").tolist()
    return Run(np.array(qids), np.array(docids, dtype=object), np.array(scores), name=f"{reranked.name}+bm25")


def evaluate_reranker(stage: Any, coll: Collection, first: Run, qrels: Any) -> dict[str, float]:
    t = time.perf_counter()
    run = stage(first)
    took = time.perf_counter() - t
    pairs = len(first)
    return {"nDCG@10": evaluate(run, qrels, ["nDCG@10"]).mean["nDCG@10"],
            "nDCG@10 interpolated": evaluate(interpolate(run, first), qrels, ["nDCG@10"]).mean["nDCG@10"],
            "rerank_pairs_per_s": pairs / took, "rerank_seconds": took}


def training_figures(manifest_path: Path, batch: int, group: int) -> dict[str, float]:
    manifest = json.loads(manifest_path.read_text())
    history = [h for h in manifest["training"]["history"] if h["event"] == "train"]
    seconds = history[-1]["seconds"]
    pairs = len(history) * batch * group
    params = manifest["training"]["report"].get("parameters") or {}
    return {"steps": len(history), "train_pairs": pairs, "train_seconds": seconds, "train_pairs_per_s": pairs / seconds,
            "trainable": params.get("trainable"), "total": params.get("total"),
            "first_loss": history[0]["loss"], "last_loss": float(np.mean([h["loss"] for h in history[-10:]]))}


def ce(args: argparse.Namespace) -> dict[str, Any]:
    from rankstack.recipes import reranker
    from rankstack.recipes.reranker import RerankerTrainConfig

    coll = Collection("scifact")
    qids = subset(coll, args.queries)
    first = bm25_top(coll, qids, args.depth)
    qrels = coll.qrels("test").restrict(qids)
    out: dict[str, Any] = {"cpu": cpu(), "date": time.strftime("%Y-%m-%d"), "queries": len(qids), "depth": args.depth,
                           "steps": args.steps, "batch_groups": args.batch, "group": 1 + args.negatives,
                           "bm25": evaluate(first, qrels, ["nDCG@10"]).mean["nDCG@10"], "arms": {}}
    arms = {"full": {"lr": 5e-5}, "lora": {"lr": 5e-4, "head_lr_multiplier": 1.0, "lora_rank": args.rank,
                                           "lora_targets": args.targets}}
    for name, extra in arms.items():
        if args.only and name != args.only:
            continue
        model = args.out / f"ce-{name}"
        if not (model / "manifest.json").is_file():
            cfg = RerankerTrainConfig(collection="scifact", out=model, n_negatives=args.negatives, validation=0,
                                      patience=None, epochs=1, max_steps=args.steps, batch_size=args.batch,
                                      max_length=192, threads=args.threads, seed=0, overwrite=True,
                                      time_budget_minutes=args.budget, cache_dir=CACHE, **extra)
            reranker.run(cfg, progress=True)
        figures = training_figures(model / "manifest.json", args.batch, 1 + args.negatives)
        stage = build({"name": "reranker", "args": {"model": str(model), "depth": args.depth, "threads": args.threads,
                                                    "progress": True}}, context=Context(collection=coll))
        figures.update(evaluate_reranker(stage, coll, first, qrels))
        out["arms"][name] = figures
        print(name, json.dumps(figures), flush=True)
        save(args, out)
    return out


def save(args: argparse.Namespace, result: dict[str, Any]) -> None:
    """Write the result so far (a killed run keeps the arms it finished)."""
    (args.out / f"{args.what}{'-' + args.only if args.only else ''}.json").write_text(json.dumps(result, indent=2))


def llm(args: argparse.Namespace) -> dict[str, Any]:
    from rankstack.recipes import lora_llm
    from rankstack.recipes.lora_llm import LlmLoraConfig
    from rankstack.rerank.lora import LlmPointwiseReranker

    coll = Collection("scifact")
    qids = subset(coll, args.queries)
    first = bm25_top(coll, qids, args.depth)
    qrels = coll.qrels("test").restrict(qids)
    out: dict[str, Any] = {"cpu": cpu(), "date": time.strftime("%Y-%m-%d"), "queries": len(qids), "depth": args.depth,
                           "steps": args.steps, "batch_groups": args.batch, "group": 1 + args.negatives,
                           "bm25": evaluate(first, qrels, ["nDCG@10"]).mean["nDCG@10"], "arms": {}}
    model = args.out / "llm-lora"
    if not (model / "manifest.json").is_file():
        cfg = LlmLoraConfig(collection="scifact", out=model, n_negatives=args.negatives, max_steps=args.steps,
                            batch_size=args.batch, lora_rank=args.rank, threads=args.threads, seed=0,
                            doc_tokens=args.doc_tokens,
                            overwrite=True, time_budget_minutes=args.budget, cache_dir=CACHE)
        lora_llm.run(cfg, progress=True)
    figures = training_figures(model / "manifest.json", args.batch, 1 + args.negatives)
    stage = LlmPointwiseReranker(model, documents=coll, depth=args.depth, threads=args.threads, progress=True)
    figures.update(evaluate_reranker(stage, coll, first, qrels))
    out["arms"]["llm-lora"] = figures
    print("llm-lora", json.dumps(figures), flush=True)
    save(args, out)
    if args.zero_shot:
        base = LlmPointwiseReranker(None, documents=coll, depth=args.depth, threads=args.threads, progress=True,
                                    doc_tokens=args.doc_tokens)
        out["arms"]["llm-zero-shot"] = evaluate_reranker(base, coll, first, qrels)
        print("llm-zero-shot", json.dumps(out["arms"]["llm-zero-shot"]), flush=True)
    return out


def speed(args: argparse.Namespace) -> dict[str, Any]:
    """Training step time, full fine-tuning vs LoRA, interleaved in one process on the same batch.

    ``--batch`` groups of 1 scifact train positive + ``--negatives`` random documents (timing depends on
    lengths, not relevance), length 192, AdamW, ListNet; one untimed warm-up step per arm, then
    ``--rounds`` rounds of one step each (the order alternates per round); medians and their ratio.
    """
    import torch

    from rankstack.losses import get_loss
    from rankstack.recipes.reranker_data import Group, PairCollator, PairListModel, head_prefixes
    from rankstack.rerank.cross_encoder import CrossEncoderReranker
    from rankstack.train.lora import LoraSettings, add_lora, parameter_counts

    torch.set_num_threads(args.threads)
    coll = Collection("scifact")
    queries, qrels = coll.queries("train"), coll.qrels("train").to_dict()
    rng = np.random.default_rng(0)
    all_docs = list(coll.documents())
    groups = []
    for qid, text in queries:
        pos = sorted(d for d, r in qrels.get(qid, {}).items() if r > 0)
        if pos:
            docs = [pos[0]] + [all_docs[i] for i in rng.choice(len(all_docs), args.negatives, replace=False)]
            groups.append(Group(qid, text, docs, [1.0] + [0.0] * args.negatives, [1.0] * len(docs), [0] * len(docs),
                                [0.0] * len(docs)))
        if len(groups) == args.batch:
            break
    torch.manual_seed(0)
    full = CrossEncoderReranker("minilm", precision="fp32")
    lora_base = CrossEncoderReranker("minilm", precision="fp32")
    head = tuple(dict.fromkeys(p.rstrip(".").rsplit(".", 1)[-1] for p in head_prefixes(lora_base.model)))
    lora = add_lora(lora_base.model, LoraSettings(rank=args.rank, targets=args.targets, modules_to_save=head), "SEQ_CLS")
    batch = PairCollator(full.tokenizer, coll.doc_texts, 192)(groups)
    loss = get_loss("listnet")
    arms = {}
    for name, net in (("full", full.model), ("lora", lora)):
        module = PairListModel(net).train()
        opt = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-5)
        arms[name] = (module, opt, parameter_counts(net))

    def step(name: str) -> float:
        module, opt, _ = arms[name]
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss(module(batch[0]), batch[1], batch[2], batch[3]).backward()
        opt.step()
        return time.perf_counter() - t

    for name in arms:
        step(name)
    times: dict[str, list[float]] = {n: [] for n in arms}
    for r in range(args.rounds):
        for name in (("full", "lora") if r % 2 == 0 else ("lora", "full")):
            times[name].append(step(name))
            print(name, round(times[name][-1], 2), flush=True)
    pairs = sum(len(g) for g in groups)
    out = {"cpu": cpu(), "date": time.strftime("%Y-%m-%d"), "pairs_per_step": pairs, "rounds": args.rounds,
           "threads": args.threads, "arms": {}}
    for name, (_, _, counts) in arms.items():
        med = float(np.median(times[name]))
        out["arms"][name] = {"median_step_s": med, "pairs_per_s": pairs / med, "steps_s": times[name], **counts}
    out["lora_speedup"] = out["arms"]["full"]["median_step_s"] / out["arms"]["lora"]["median_step_s"]
    return out


def table(result: dict[str, Any]) -> str:
    rows = [f"| BM25 top {result['depth']} | - | - | - | {result['bm25']:.4f} | - | - |"]
    for name, f in result["arms"].items():
        tp = "-" if f.get("trainable") is None else f"{f['trainable']:,} / {f['total']:,} ({f['trainable'] / f['total']:.2%})"
        tr = "-" if "train_pairs_per_s" not in f else f"{f['train_pairs_per_s']:.2f}"
        steps = "-" if "steps" not in f else f"{f['steps']} steps, {f['train_pairs']} pairs, {f['train_seconds'] / 60:.1f} min"
        rows.append(f"| {name} | {tp} | {steps} | {tr} | {f['nDCG@10']:.4f} | {f['nDCG@10 interpolated']:.4f} | "
                    f"{f['rerank_pairs_per_s']:.1f} |")
    head = ("| model | trainable / total params | training | train pairs/s | nDCG@10 | nDCG@10 interp. BM25 (z, 0.5) "
            "| rerank pairs/s |\n|---|---|---|---|---|---|---|")
    return head + "\n" + "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=("ce", "llm", "speed"))
    p.add_argument("--rounds", type=int, default=5, help="speed: interleaved timed steps per arm")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch", type=int, default=4, help="query groups per optimiser step")
    p.add_argument("--negatives", type=int, default=7)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--targets", default="query,value")
    p.add_argument("--queries", type=int, default=100, help="seeded subset of scifact test queries (0: all 300)")
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--doc-tokens", type=int, default=192, help="llm: documents cut to this many tokens")
    p.add_argument("--budget", type=float, default=15.0, help="minutes: a safety stop per training run")
    p.add_argument("--only", choices=("full", "lora"), default=None)
    p.add_argument("--zero-shot", action="store_true", help="llm: also the base model without the adapter")
    p.add_argument("--out", type=Path, default=Path(".cache/lora_bench"))
    args = p.parse_args()
    args.queries = args.queries or None
    args.out.mkdir(parents=True, exist_ok=True)
    if args.what == "speed":
        result = speed(args)
        save(args, result)
        print(json.dumps({k: v for k, v in result.items() if k != "arms"}),
              {n: {k: v for k, v in a.items() if k != "steps_s"} for n, a in result["arms"].items()})
        return
    result = ce(args) if args.what == "ce" else llm(args)
    save(args, result)
    print(f"CPU: {result['cpu']}; {result['date']}; {result['queries']} scifact test queries, BM25 top {result['depth']}")
    print(table(result))


if __name__ == "__main__":
    main()
