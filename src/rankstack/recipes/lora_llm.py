"""Fine-tune a small LLM with LoRA as a pointwise yes/no reranker (``rankstack train llm-reranker``).

Why: a chat LLM asked "Is the document relevant to the query? Answer Yes or No." carries little
relevance signal zero-shot at 135M parameters (see the field notes); LoRA ("LoRA: Low-Rank Adaptation
of Large Language Models", Hu et al., 2021) teaches it from judged queries while training well under
1% of its weights and keeping the GGUF base shared, as parameter-efficient reranking does in "Scattered
or Connected? An Optimized Parameter-efficient Tuning Approach for Information Retrieval" (Ma et al.,
2022) and "Parameter-Efficient Neural Reranking for Cross-Lingual and Multilingual Retrieval"
(Litschko et al., 2022). The score is logit(Yes) - logit(No) at the answer position
(:mod:`rankstack.rerank.lora`); groups of one judged positive and ``n`` mined negatives are trained
with any loss of the loss library (listwise softmax over the group by default: localised contrastive
estimation, Gao, Dai & Callan, ECIR 2021; ``bce`` for pointwise) by the shared Trainer.

Steps: the cross-encoder recipe's data preparation (first stage, mined negatives, groups:
:func:`rankstack.recipes.reranker_fit.prepare`), the base LLM (SmolLM2-135M-Instruct GGUF by default)
wrapped with LoRA on the attention's query/value projections, the Trainer, and an adapter folder
(:func:`rankstack.rerank.lora.save_adapter`) that ``llm_lora(adapter=DIR)`` loads. No validation
split: every query trains, and budgets on a CPU are set in steps or minutes.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

from rankstack.errors import InputError
from rankstack.recipes.config import option, to_dict

__all__ = ["LlmLoraConfig", "LlmLoraReport", "LlmPairCollator", "LlmPairListModel", "run"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LlmLoraConfig:
    """Everything that defines an LLM LoRA reranker training run (stored in the adapter's manifest)."""

    collection: str = option(help="a BEIR folder, or a collection name under the data root (e.g. scifact)")
    out: Path = option(help="adapter folder to write (atomically); an existing adapter needs --overwrite")
    data_root: str | None = option(None, help="folder holding collections by name ($RANKSTACK_DATA or ../shared/data)")
    split: str = option("train", help="qrels split to train on")
    overwrite: bool = option(False, help="replace a LoRA adapter already saved at --out")
    base_model: str = option("smollm2", help="'smollm2' (SmolLM2-135M-Instruct GGUF), a .gguf file or a causal-LM folder")
    loss: str = option("listnet", metavar="SPEC", help="any registered loss, e.g. 'listnet' (softmax over the group), 'bce'")
    first_stage: str = option("bm25", help="first stage the negatives come from")
    negatives: Literal["bm25", "dense", "random"] = option("bm25", help="where hard negatives come from")
    n_negatives: int = option(3, help="negatives per positive")
    negative_depth: int = option(30, help="sample hard negatives from this top k")
    max_queries: int | None = option(None, help="train on a seeded subset of the queries")
    epochs: int = option(1, help="passes over the training groups")
    max_steps: int | None = option(None, help="stop after this many optimiser steps")
    batch_size: int = option(2, help="query groups per step")
    grad_accum: int = option(1, help="optimiser step every N batches")
    lr: float = option(2e-4, help="learning rate of the adapters (AdamW)")
    weight_decay: float = option(0.0, help="decoupled weight decay of the adapter matrices")
    warmup_ratio: float = option(0.1, help="share of the steps with linear warm-up")
    grad_clip: float | None = option(1.0, help="max global gradient norm (none: no clipping)")
    doc_tokens: int = option(192, help="documents are cut to this many tokens in the prompt")
    lora_rank: int = option(8, help="rank of the LoRA update")
    lora_alpha: float | None = option(None, help="LoRA scale alpha (update scaled by alpha/rank; none: 2 x rank)")
    lora_dropout: float = option(0.05, help="dropout on the LoRA adapters' input")
    lora_targets: str = option("q_proj,v_proj", metavar="NAMES", help="comma-separated linear layers that get adapters")
    precision: Literal["auto", "bf16", "fp32"] = option("auto", help="auto = bf16 autocast where the CPU has it")
    threads: int | None = option(2, help="torch threads while training")
    seed: int = option(0, help="seeds the negatives, data order, dropout and the adapters' initialisation")
    time_budget_minutes: float | None = option(None, flag="--time-budget", metavar="MINUTES",
                                               help="stop training after this many minutes")
    report: Path | None = option(None, help="write the training report as JSON")
    cache_dir: Path | None = option(Path(".cache/rankstack"), help="where indexes and stage outputs are cached "
                                                                   "('none' disables caching)")

    def __post_init__(self) -> None:
        for name in ("n_negatives", "negative_depth", "epochs", "batch_size", "grad_accum", "doc_tokens"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        from rankstack.losses import get_loss
        from rankstack.recipes.reranker import loss_spec

        get_loss(loss_spec(self.loss))
        self.settings()  # a bad rank, alpha, dropout or target list fails before any work

    def settings(self) -> Any:
        from rankstack.train.lora import LoraSettings

        return LoraSettings(rank=self.lora_rank, alpha=self.lora_alpha, dropout=self.lora_dropout,
                            targets=self.lora_targets)


@dataclass
class LlmLoraReport:
    """What :func:`run` did."""

    adapter_dir: str
    train_queries: int
    groups: int
    steps: int
    train_pairs: int
    train_seconds: float
    seconds: float
    precision: str
    parameters: dict[str, int]
    stopped_by_budget: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_text(self) -> str:
        p = self.parameters
        return (f"wrote {self.adapter_dir}: {self.steps} steps ({self.train_pairs} pairs) in "
                f"{self.train_seconds / 60:.1f} min ({self.precision}), {p['trainable']:,} of {p['total']:,} "
                f"parameters trained ({p['trainable'] / p['total']:.2%})")


class LlmPairCollator:
    """``collate(groups) -> (inputs, labels, mask, weights)``: every (query, candidate) as a chat prompt."""

    def __init__(self, backend: Any, doc_texts: Callable[[Sequence[str]], list[str]], doc_tokens: int) -> None:
        self.backend, self.doc_texts, self.doc_tokens = backend, doc_texts, doc_tokens

    def __call__(self, groups: Sequence[Any]) -> tuple[dict[str, Any], Any, Any, Any]:
        import torch

        from rankstack.rerank.lora import encode_prompts

        if not groups:
            raise InputError("cannot collate an empty batch")
        B, L = len(groups), max(len(g) for g in groups)
        labels, mask, weights = torch.zeros(B, L), torch.zeros(B, L, dtype=torch.bool), torch.ones(B, L)
        q_texts, d_ids, flat = [], [], []
        for b, g in enumerate(groups):
            n = len(g)
            labels[b, :n] = torch.tensor(g.labels, dtype=torch.float32)
            weights[b, :n] = torch.tensor(g.weights, dtype=torch.float32)
            mask[b, :n] = True
            q_texts += [g.query] * n
            d_ids += list(g.docids)
            flat += [b * L + j for j in range(n)]
        features = encode_prompts(self.backend, q_texts, self.doc_texts(d_ids), self.doc_tokens)
        inputs = {"features": features, "index": torch.tensor(flat, dtype=torch.long), "shape": (B, L)}
        return inputs, labels, mask, weights


class LlmPairListModel:
    """Wrap a causal LM as ``forward(inputs) -> scores[B, L]`` of logit(Yes) - logit(No) (an nn.Module)."""

    def __new__(cls, model: Any, yes: int, no: int) -> Any:
        import torch

        from rankstack.rerank.lora import yes_no_scores

        class _LlmPairList(torch.nn.Module):
            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.model = inner

            def forward(self, inputs: dict[str, Any]) -> torch.Tensor:
                scores = yes_no_scores(self.model, inputs["features"], yes, no)
                B, L = inputs["shape"]
                out = torch.zeros(B * L, dtype=scores.dtype, device=scores.device)
                return out.index_copy(0, inputs["index"], scores).view(B, L)

        return _LlmPairList(model)


def _prepare_view(cfg: LlmLoraConfig) -> SimpleNamespace:
    """The fields :func:`rankstack.recipes.reranker_fit.prepare` reads (no validation split, no curriculum)."""
    return SimpleNamespace(split=cfg.split, validation=0, seed=cfg.seed, max_queries=cfg.max_queries,
                           negative_depth=cfg.negative_depth, validation_depth=cfg.negative_depth,
                           first_stage=cfg.first_stage, cache_dir=cfg.cache_dir, negatives=cfg.negatives,
                           epochs=cfg.epochs, resample_negatives=False, n_negatives=cfg.n_negatives, graded=False,
                           curriculum=None)


def run(config: LlmLoraConfig, *, progress: bool | None = True) -> LlmLoraReport:
    """Train LoRA adapters of ``config.base_model`` as a pointwise reranker; save them to ``config.out``."""
    import torch

    from rankstack.data.beir import Collection, default_data_root
    from rankstack.hardware import torch_threads
    from rankstack.recipes.reranker import loss_spec
    from rankstack.recipes.reranker_fit import prepare
    from rankstack.rerank.lora import (ADAPTER_KIND, PROMPT, backend_for, load_causal_lm, save_adapter,
                                       yes_no_ids)
    from rankstack.storage import atomic_write_text, check_output_file, check_output_folder
    from rankstack.train.lora import add_lora, parameter_counts
    from rankstack.train.trainer import Trainer

    t0 = time.perf_counter()
    collection = Collection(config.collection, data_root=config.data_root)
    inputs = (Path(collection.path), Path(config.data_root) if config.data_root else default_data_root())
    check_output_folder(config.out, kind=ADAPTER_KIND, overwrite=config.overwrite, inputs=inputs)
    if config.report is not None:
        check_output_file(config.report, inputs)
    data = prepare(_prepare_view(config), collection)
    settings = config.settings()
    with torch_threads(config.threads):
        base, tokenizer, base_path = load_causal_lm(config.base_model)
        backend = backend_for(base, tokenizer, threads=config.threads)
        yes, no = yes_no_ids(backend)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)  # the adapters' random initialisation follows the seed
            model = add_lora(base, settings, task_type="CAUSAL_LM")
    params = parameter_counts(model)
    trainer = Trainer(LlmPairListModel(model, yes, no), loss_spec(config.loss), lr=config.lr,
                      weight_decay=config.weight_decay, warmup_ratio=config.warmup_ratio, epochs=config.epochs,
                      max_steps=config.max_steps, batch_size=config.batch_size, grad_accum=config.grad_accum,
                      grad_clip=config.grad_clip, precision=config.precision, seed=config.seed,
                      num_threads=config.threads, progress=progress,
                      time_budget=None if config.time_budget_minutes is None else 60.0 * config.time_budget_minutes)
    log.info("LoRA on %s: %d of %d parameters trainable; %d groups", base_path.name, params["trainable"],
             params["total"], len(data.groups))
    fit = trainer.fit(data.groups, LlmPairCollator(backend, collection.doc_texts, config.doc_tokens))
    model.eval()
    train_steps = [h for h in fit.history if h["event"] == "train"]
    pairs = _pairs_seen(data.groups, fit.steps, config)
    report = LlmLoraReport(adapter_dir=str(config.out), train_queries=len(data.train_q), groups=len(data.groups),
                           steps=fit.steps, train_pairs=pairs,
                           train_seconds=train_steps[-1]["seconds"] if train_steps else fit.seconds,
                           seconds=time.perf_counter() - t0, precision=fit.precision, parameters=params,
                           stopped_by_budget=fit.stopped_by_budget)
    training = {"config": to_dict(config), "trainer": trainer.config(), "collection": str(collection.path),
                "split": config.split, "report": report.to_dict(), "history": fit.history}
    save_adapter(model, config.out, family="llm-pointwise", base_model=config.base_model, base_path=base_path,
                 training=training, overwrite=config.overwrite, inputs=inputs,
                 params={"doc_tokens": config.doc_tokens, "prompt": PROMPT, "score": "logit(Yes) - logit(No)",
                         "lora": settings.to_dict(), "parameters": params})
    if config.report is not None:
        import json

        atomic_write_text(config.report, json.dumps(report.to_dict(), indent=2) + "\n", inputs=inputs, kind="json")
    return report


def _pairs_seen(groups: list[Any], steps: int, cfg: LlmLoraConfig) -> int:
    """Pairs the optimiser saw: ``steps * batch_size * grad_accum`` groups' worth (one epoch at most per pass)."""
    per_group = sum(len(g) for g in groups) / max(1, len(groups))
    return int(round(min(steps * cfg.batch_size * cfg.grad_accum, len(groups) * cfg.epochs) * per_group))
