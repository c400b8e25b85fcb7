"""The one training loop for every learned scorer (cross-encoders, LETOR MLPs, unbiased learners).

Why one loop: optimiser set-up, warm-up schedule, mixed precision, validation with the real
``evaluate``, early stopping, checkpoints and reproducibility are the same for every model, and
getting them right once is cheaper than getting them almost right five times. The trainer knows
nothing about models or data beyond two contracts:

* a scorer is a ``torch.nn.Module`` whose ``forward(model_inputs)`` returns ``scores[B, L]``;
* ``collate(list_of_examples) -> (model_inputs, labels[B, L], mask[B, L], weights[B, L] | None)``.

The loss is any ``rankstack.losses`` name/spec or any callable with the loss signature, so a
propensity-weighted unbiased learner is the same loop with ``weights`` from its collate.

Checkpoints (:mod:`rankstack.train.checkpoint`) are safetensors plus the history and a JSON
manifest written atomically; the optimiser and schedule live in :mod:`rankstack.train.optim`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rankstack.errors import InputError, RankstackError
from rankstack.hardware import resolve_precision, torch_threads
from rankstack.train.batching import epoch_batches
from rankstack.train.checkpoint import WEIGHTS_FILE, save_checkpoint
from rankstack.train.optim import OPTIMIZERS, SCHEDULES, build_optimizer, lr_factor

__all__ = ["Trainer", "FitResult", "TrainingDivergedError"]

log = logging.getLogger(__name__)

Collate = Callable[[list[Any]], tuple[Any, Any, Any, Any]]


class TrainingDivergedError(RankstackError):
    """The loss became NaN or infinite; the message names the step and what to try."""


# ----------------------------------------------------------------------------- helpers
def _to_device(obj: Any, device: torch.device) -> Any:
    """Move every tensor inside nested dicts/lists/tuples to ``device`` (no copy when already there)."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, Mapping):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_device(v, device) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_to_device(v, device) for v in obj)
    return obj


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except TypeError:
        return repr(value)


@dataclass
class FitResult:
    """What :meth:`Trainer.fit` did: steps run, best validation value and where, why it stopped."""

    steps: int
    epochs: float
    best_value: float | None
    best_step: int | None
    stopped_early: bool
    precision: str
    precision_reason: str
    seconds: float
    checkpoint: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list, repr=False)
    stopped_by_budget: bool = False


class Trainer:
    """Train a ``[B, L]`` scorer with a ranking loss.

    Parameters
    ----------
    model: ``torch.nn.Module``, ``forward(model_inputs) -> scores[B, L]``.
    loss: a loss name (``"listnet"``), a ``{"name", "args"}`` spec or a callable
        ``loss(scores, labels, mask, weights)``.
    optimizer: ``"adamw"`` | ``"adam"`` | ``"sgd"`` or ``factory(param_groups) -> Optimizer``.
    lr, weight_decay: base learning rate; decoupled weight decay applied to weight matrices only
        (parameters with ``dim >= 2``), not to biases and norm scales, as is standard for
        transformers (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", 2019).
    warmup_ratio, schedule: linear warm-up over that fraction of the steps, then ``"linear"``
        decay to 0, ``"cosine"`` decay or ``"constant"``.
    epochs, max_steps: stop after whichever comes first (at least one is required; data without
        ``len`` needs ``max_steps``).
    batch_size, grad_accum: examples per collate call; optimiser step every ``grad_accum`` batches.
    grad_clip: max global gradient norm (``None``: no clipping).
    precision: ``"auto"`` (bf16 autocast when the CPU has native bf16, else fp32) | ``"fp32"`` |
        ``"bf16"`` (falls back to fp32 with a warning when unsupported). The loss is always
        computed in fp32. Which one ran is in ``precision_used`` / ``precision_reason``.
    seed: seeds the shuffling generator and torch's RNG (dropout) inside :meth:`fit` without
        changing the caller's global RNG state; same seed, same data, same initial weights ->
        identical losses.
    validate_fn, validate_every: ``validate_fn(model) -> float`` (higher is better, e.g. nDCG@10
        from ``rankstack.evaluate`` on a validation slice), called in ``eval()`` mode under
        ``no_grad`` every ``validate_every`` optimiser steps, or at the end of each epoch when
        ``validate_every`` is None, and once more at the end if the last step was not validated.
    patience, min_delta: stop after ``patience`` validations without an improvement larger than
        ``min_delta``. ``restore_best``: load the best weights into ``model`` when training ends.
    checkpoint_dir: the best state (or the final one without ``validate_fn``) is saved there as
        safetensors + ``manifest.json`` + ``history.json``, atomically.
    param_groups: ``{name_prefix: lr_multiplier}``, e.g. ``{"model.classifier": 10.0}`` for a
        fresh head; the longest matching prefix wins, unmatched parameters use 1.0.
    num_threads: torch intra-op threads during :meth:`fit` (on a loaded 2-core machine 1 can be
        much faster than 2); restored afterwards.
    progress: show a tqdm bar with the loss and the last validation value (None: only on a TTY).
    time_budget: wall-clock seconds for :meth:`fit`; training stops after the first optimiser step
        past it (then validates and restores the best state as usual). Planned runs on a shared CPU
        can then promise a bound ("<= 60 minutes") without guessing the speed. The learning-rate
        schedule still follows the planned steps, so set ``max_steps`` to what the budget affords.
    fused_optimizer: Adam/AdamW in torch's fused single-kernel step (``None``: where available).
    compile: run the training forward through ``torch.compile`` (inductor fuses the elementwise work
        around the matmuls; the first steps pay the compilation). The weights stay those of ``model``.
    bucket_key, bucket_window: length bucketing of batches (:mod:`rankstack.train.batching`): less
        padding per batch, for sized data.
    """

    def __init__(self, model: torch.nn.Module, loss: Any, *, optimizer: str | Callable[..., Any] = "adamw",
                 lr: float = 1e-3, weight_decay: float = 0.0, warmup_ratio: float = 0.0,
                 schedule: str = "linear", epochs: int | None = None, max_steps: int | None = None,
                 batch_size: int = 16, grad_accum: int = 1, grad_clip: float | None = 1.0,
                 precision: str = "auto", seed: int = 0, validate_every: int | None = None,
                 validate_fn: Callable[[torch.nn.Module], float] | None = None, patience: int | None = None,
                 min_delta: float = 0.0, restore_best: bool = True, checkpoint_dir: str | Path | None = None,
                 param_groups: Mapping[str, float] | None = None, num_threads: int | None = None,
                 shuffle: bool = True, drop_last: bool = False, log_every: int = 1,
                 progress: bool | None = None, device: str = "cpu", time_budget: float | None = None,
                 fused_optimizer: bool | None = False, compile: bool = False,
                 bucket_key: Callable[[Any], float] | None = None, bucket_window: int = 50) -> None:
        from rankstack.losses import get_loss

        if not isinstance(model, torch.nn.Module):
            raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if epochs is None and max_steps is None:
            raise InputError("neither epochs nor max_steps is set", fix="pass epochs=... or max_steps=...")
        for name, value, low in (("epochs", epochs, 1), ("max_steps", max_steps, 1), ("batch_size", batch_size, 1),
                                 ("grad_accum", grad_accum, 1), ("validate_every", validate_every, 1),
                                 ("patience", patience, 1), ("num_threads", num_threads, 1),
                                 ("log_every", log_every, 1), ("bucket_window", bucket_window, 1)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < low):
                raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
        if time_budget is not None and not (isinstance(time_budget, (int, float)) and time_budget > 0):
            raise InputError(f"time_budget must be a positive number of seconds, got {time_budget!r}")
        if not (isinstance(lr, (int, float)) and lr > 0):
            raise InputError(f"lr must be a positive number, got {lr!r}")
        if not (0.0 <= warmup_ratio < 1.0):
            raise InputError(f"warmup_ratio must be in [0, 1), got {warmup_ratio!r}")
        if weight_decay < 0:
            raise InputError(f"weight_decay must be >= 0, got {weight_decay!r}")
        if grad_clip is not None and not grad_clip > 0:
            raise InputError(f"grad_clip must be positive or None, got {grad_clip!r}")
        if schedule not in SCHEDULES:
            raise InputError(f"unknown schedule {schedule!r}", fix=f"choose one of {', '.join(SCHEDULES)}")
        if isinstance(optimizer, str) and optimizer not in OPTIMIZERS:
            raise InputError(f"unknown optimizer {optimizer!r}",
                             fix=f"choose one of {', '.join(OPTIMIZERS)} or pass a factory(param_groups)")
        if patience is not None and validate_fn is None:
            raise InputError("patience needs a validate_fn", fix="pass validate_fn=callable(model) -> float")
        for prefix, mult in (param_groups or {}).items():
            if not (isinstance(mult, (int, float)) and mult >= 0):
                raise InputError(f"param_groups[{prefix!r}] must be a non-negative multiplier, got {mult!r}")
        self.model = model
        self.loss = get_loss(loss)
        self.optimizer_name = optimizer
        self.lr, self.weight_decay, self.warmup_ratio, self.schedule = float(lr), float(weight_decay), \
            float(warmup_ratio), schedule
        self.epochs, self.max_steps = epochs, max_steps
        self.batch_size, self.grad_accum, self.grad_clip = batch_size, grad_accum, grad_clip
        self.precision = precision
        self.precision_used, self.precision_reason = resolve_precision(precision)
        self.seed = int(seed)
        self.validate_every, self.validate_fn = validate_every, validate_fn
        self.patience, self.min_delta, self.restore_best = patience, float(min_delta), restore_best
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.param_groups = dict(param_groups or {})
        self.num_threads, self.shuffle, self.drop_last = num_threads, shuffle, drop_last
        self.log_every, self.progress = log_every, progress
        self.device = torch.device(device)
        self.time_budget = None if time_budget is None else float(time_budget)
        self.fused_optimizer, self.compile = fused_optimizer, bool(compile)
        self.bucket_key, self.bucket_window = bucket_key, bucket_window
        self.history: list[dict[str, Any]] = []
        self.step = 0  # optimiser steps taken (a collate's curriculum may read it)
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: Any = None
        self._checkpoint_extra: dict[str, Any] | None = None

    # ------------------------------------------------------------------------ configuration
    def config(self) -> dict[str, Any]:
        """JSON-serialisable settings, stored in checkpoint manifests."""
        loss = self.loss.spec() if hasattr(self.loss, "spec") else getattr(self.loss, "__name__", repr(self.loss))
        return {"loss": loss, "optimizer": _jsonable(self.optimizer_name), "lr": self.lr,
                "weight_decay": self.weight_decay, "warmup_ratio": self.warmup_ratio, "schedule": self.schedule,
                "epochs": self.epochs, "max_steps": self.max_steps, "batch_size": self.batch_size,
                "grad_accum": self.grad_accum, "grad_clip": self.grad_clip, "precision": self.precision,
                "precision_used": self.precision_used, "seed": self.seed, "validate_every": self.validate_every,
                "patience": self.patience, "min_delta": self.min_delta, "param_groups": self.param_groups,
                "time_budget": self.time_budget, "fused_optimizer": self.fused_optimizer, "compile": self.compile,
                "bucketing": self.bucket_window if self.bucket_key is not None else None}

    def autocast(self) -> contextlib.AbstractContextManager:
        """The autocast context training runs under (use it in ``validate_fn`` for matching numerics)."""
        if self.precision_used == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _build_optimizer(self) -> torch.optim.Optimizer:
        return build_optimizer(self.model, self.optimizer_name, self.lr, self.weight_decay, self.param_groups,
                               fused=self.fused_optimizer)

    def _lr_factor(self, step: int, total: int) -> float:
        return lr_factor(step, total, self.warmup_ratio, self.schedule)

    # ------------------------------------------------------------------------ data
    def _batches(self, data: Any, rng: np.random.Generator) -> Iterator[list[Any]]:
        return epoch_batches(data, self.batch_size, rng, shuffle=self.shuffle, drop_last=self.drop_last,
                             bucket_key=self.bucket_key, bucket_window=self.bucket_window)

    def _plan(self, data: Any) -> tuple[int, int | None]:
        """``(total optimiser steps, batches per epoch or None)``."""
        per_epoch = None
        if hasattr(data, "__len__"):
            n = len(data)
            if n == 0:
                raise InputError("the training data is empty")
            per_epoch = n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
            if per_epoch == 0:
                raise InputError(f"drop_last with batch_size {self.batch_size} leaves no batch of {n} examples")
        if self.max_steps is None and per_epoch is None:
            raise InputError("the training data has no length, so epochs cannot be planned",
                             fix="pass max_steps=... (or a sized Dataset/list)")
        total = None
        if per_epoch is not None and self.epochs is not None:
            total = self.epochs * math.ceil(per_epoch / self.grad_accum)
        if self.max_steps is not None:
            total = self.max_steps if total is None else min(total, self.max_steps)
        return int(total), per_epoch

    # ------------------------------------------------------------------------ validation
    def _validate(self) -> float:
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                value = self.validate_fn(self.model)  # type: ignore[misc]
        finally:
            self.model.train(was_training)
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise InputError(f"validate_fn must return a number, got {type(value).__name__}") from None
        if math.isnan(value):
            raise InputError("validate_fn returned NaN", fix="check the validation slice is not empty")
        return value

    def _save(self, extra: Mapping[str, Any], keep_weights: bool = False) -> None:
        """Write the checkpoint (weights, history, manifest) as one atomic folder.

        ``keep_weights``: rewrite only the history, copying the weights already saved (the best state).
        """
        if self.checkpoint_dir is None:
            raise RuntimeError("internal error: _save without checkpoint_dir")
        self._checkpoint_extra = dict(extra)
        save_checkpoint(self.model, self.checkpoint_dir, params=self.config(), extra=extra, history=self.history,
                        weights_from=self.checkpoint_dir / WEIGHTS_FILE if keep_weights else None)

    # ------------------------------------------------------------------------ the loop
    def fit(self, data: Sequence[Any] | Iterable[Any], collate: Collate) -> FitResult:
        """Train on ``data`` (a sized Sequence/Dataset, shuffled per epoch, or an iterable)."""
        if not callable(collate):
            raise InputError("collate must be callable: collate(examples) -> (inputs, labels, mask, weights)")
        total, per_epoch = self._plan(data)
        with torch_threads(self.num_threads), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return self._fit(data, collate, total, per_epoch)

    def _fit(self, data: Any, collate: Collate, total: int, per_epoch: int | None) -> FitResult:
        from tqdm.auto import tqdm

        rng = np.random.default_rng(self.seed)
        self.model.to(self.device)
        self.model.train()
        forward = torch.compile(self.model) if self.compile else self.model  # shares model's parameters
        self.optimizer = self._build_optimizer()
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: self._lr_factor(s, total))
        self.history, self.step = [], 0
        best_value: float | None = None
        best_step: int | None = None
        best_state: dict[str, torch.Tensor] | None = None
        bad_validations, stopped_early, over_budget = 0, False, False
        last_val: float | None = None
        last_loss: float | None = None
        validated_at = -1
        running, running_n = 0.0, 0
        start = time.perf_counter()
        bar = tqdm(total=total, desc="train", unit="step", dynamic_ncols=True,
                   disable=None if self.progress is None else not self.progress)

        def validate(epoch_pos: float) -> bool:
            """Run validation; True when training should stop."""
            nonlocal best_value, best_step, best_state, bad_validations, last_val, validated_at
            value = self._validate()
            last_val, validated_at = value, self.step
            improved = best_value is None or value > best_value + self.min_delta
            self.history.append({"event": "validation", "step": self.step, "epoch": round(epoch_pos, 4),
                                 "value": value, "best": improved})
            bar.set_postfix(loss="-" if last_loss is None else f"{last_loss:.4f}", val=f"{value:.4f}")
            log.info("step %d: validation %.4f%s", self.step, value, " (best)" if improved else "")
            if improved:
                best_value, best_step, bad_validations = value, self.step, 0
                if self.restore_best:
                    best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                if self.checkpoint_dir is not None:
                    self._save({"step": self.step, "epoch": epoch_pos, "validation": value,
                                "precision_reason": self.precision_reason})
                return False
            bad_validations += 1
            return self.patience is not None and bad_validations >= self.patience

        epoch, micro, done, batches_seen = 0, 0, False, 0
        self.optimizer.zero_grad(set_to_none=True)
        try:
            while not done:
                if self.epochs is not None and epoch >= self.epochs:
                    break
                n_batches = 0
                for batch_i, examples in enumerate(self._batches(data, rng)):
                    n_batches += 1
                    batches_seen += 1
                    collated = collate(examples)
                    if not (isinstance(collated, tuple) and len(collated) == 4):
                        raise InputError("collate must return (model_inputs, labels, mask, weights)",
                                         fix="return weights=None when there are none")
                    inputs, labels, mask, weights = _to_device(collated, self.device)
                    with self.autocast():
                        scores = forward(inputs)
                    if not isinstance(scores, torch.Tensor) or scores.dim() != 2:
                        raise InputError("model(inputs) must return scores [B, L], got "
                                         f"{getattr(scores, 'shape', type(scores).__name__)}")
                    loss = self.loss(scores.float(), labels, mask, weights)
                    if not torch.isfinite(loss):
                        raise TrainingDivergedError(
                            f"loss is {float(loss.detach())} at step {self.step} (epoch {epoch})"
                            " (fix: lower lr, set grad_clip, or check labels/scores for inf/NaN)")
                    (loss / self.grad_accum).backward()
                    running += float(loss.detach())
                    running_n += 1
                    micro += 1
                    last_in_epoch = per_epoch is not None and batch_i + 1 == per_epoch
                    if micro % self.grad_accum and not last_in_epoch:
                        continue
                    micro = 0
                    grad_norm = None
                    if self.grad_clip is not None:
                        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip))
                    lr_now = self.lr * self._lr_factor(self.step, total)
                    self.optimizer.step()
                    self.scheduler.step()
                    self.optimizer.zero_grad(set_to_none=True)
                    self.step += 1
                    epoch_pos = epoch + ((batch_i + 1) / per_epoch if per_epoch else 0.0)
                    if self.step % self.log_every == 0:
                        rec = {"event": "train", "step": self.step, "epoch": round(epoch_pos, 4),
                               "loss": running / running_n, "lr": lr_now,
                               "seconds": round(time.perf_counter() - start, 3)}
                        if grad_norm is not None:
                            rec["grad_norm"] = grad_norm
                        self.history.append(rec)
                        last_loss = rec["loss"]
                        bar.set_postfix(loss=f"{last_loss:.4f}",
                                        val="-" if last_val is None else f"{last_val:.4f}")
                        running, running_n = 0.0, 0
                    bar.update(1)
                    if self.validate_fn is not None and self.validate_every is not None \
                            and self.step % self.validate_every == 0 and validate(epoch_pos):
                        stopped_early = done = True
                        break
                    if self.step >= total:
                        done = True
                        break
                    if self.time_budget is not None and time.perf_counter() - start >= self.time_budget:
                        log.warning("time budget of %.0fs reached after %d of %d planned steps: stopping",
                                    self.time_budget, self.step, total)
                        over_budget = done = True
                        break
                if n_batches == 0:
                    log.warning("epoch %d produced no batch (an exhausted iterator?): stopping", epoch)
                    break
                epoch += 1
                if not done and self.validate_fn is not None and self.validate_every is None \
                        and validate(float(epoch)):
                    stopped_early = done = True
            if self.validate_fn is not None and validated_at != self.step and not stopped_early:
                validate(float(epoch))
        finally:
            bar.close()
        if best_state is not None and best_step != self.step:
            self.model.load_state_dict(best_state)
        checkpoint = None
        if self.checkpoint_dir is not None:
            if self.validate_fn is None:
                self._save({"step": self.step, "epoch": float(epoch), "validation": None,
                            "precision_reason": self.precision_reason})
            elif self._checkpoint_extra is not None:
                # keep the history complete; the weights stay the best ones saved above
                self._save(self._checkpoint_extra, keep_weights=True)
            checkpoint = str(self.checkpoint_dir)
        seconds = time.perf_counter() - start
        epochs_done = float(epoch) if per_epoch is None else batches_seen / per_epoch
        log.info("trained %d steps in %.1fs (%s)", self.step, seconds, self.precision_used)
        return FitResult(steps=self.step, epochs=round(epochs_done, 4), best_value=best_value, best_step=best_step,
                         stopped_early=stopped_early, precision=self.precision_used,
                         precision_reason=self.precision_reason, seconds=seconds, checkpoint=checkpoint,
                         history=self.history, stopped_by_budget=over_budget)
