"""LoRA for any torch model: validated settings, wrapping with ``peft``, trainable-parameter counts.

Why LoRA: "LoRA: Low-Rank Adaptation of Large Language Models" (Hu et al., 2021) freezes the
pretrained weights and learns a rank-``r`` update ``B @ A`` (scaled by ``alpha / r``) beside chosen
linear layers, so a fine-tuned model is the shared base plus a few hundred kilobytes, and the update
can be merged into the weights for inference at no extra cost. For rerankers, "Scattered or
Connected? An Optimized Parameter-efficient Tuning Approach for Information Retrieval" (Ma et al.,
CIKM 2022) found parameter-efficient tuning on par with full fine-tuning for cross-encoder re-ranking
with ~1% of the parameters trained (the gap they close with inter-module connections is in
first-stage retrieval, which is not done here); "Parameter-Efficient Neural Reranking for
Cross-Lingual and Multilingual Retrieval" (Litschko et al., COLING 2022) keeps the ranking
capability as a small module stored apart from the base model and composed with it at load time —
the reason adapters are their own artefact here. The ``peft`` library does the wrapping; this module
only validates the options (rank, alpha, dropout, target modules that exist in the model) so a bad
option fails in one line before any work, and lives in ``train`` because nothing in it depends on a
scorer family.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rankstack.errors import InputError, did_you_mean, require

__all__ = ["LoraSettings", "add_lora", "linear_module_names", "parameter_counts", "parse_targets"]


def parse_targets(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"query,value"`` or ``["query", "value"]`` -> ``("query", "value")`` (names of linear layers)."""
    items = text.split(",") if isinstance(text, str) else list(text)
    targets = tuple(t.strip() for t in items if str(t).strip())
    if not targets:
        raise InputError("LoRA needs at least one target module", fix="e.g. --lora-targets query,value")
    return targets


@dataclass(frozen=True)
class LoraSettings:
    """Rank ``r``, scale ``alpha`` (update scaled by ``alpha / r``, Hu et al. 2021), dropout on the
    adapter input, the linear layers to adapt (matched by their last name component) and the modules
    trained fully and saved with the adapter (``modules_to_save``, e.g. a fresh ranking head)."""

    rank: int = 8
    alpha: float | None = None  # None: 2 * rank
    dropout: float = 0.1
    targets: tuple[str, ...] = ("query", "value")
    modules_to_save: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise InputError(f"LoRA rank must be a positive integer, got {self.rank!r}",
                             fix="use --lora-rank 8 (4-16 is usual)")
        if self.alpha is not None and not (isinstance(self.alpha, (int, float)) and self.alpha > 0):
            raise InputError(f"LoRA alpha must be a positive number, got {self.alpha!r}",
                             fix="use --lora-alpha 16 (or leave it: 2 x rank)")
        if not (isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0):
            raise InputError(f"LoRA dropout must be in [0, 1), got {self.dropout!r}")
        object.__setattr__(self, "targets", parse_targets(self.targets))

    @property
    def scale_alpha(self) -> float:
        return float(self.alpha if self.alpha is not None else 2 * self.rank)

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "alpha": self.scale_alpha, "dropout": float(self.dropout),
                "targets": list(self.targets), "modules_to_save": list(self.modules_to_save)}


def linear_module_names(model: Any) -> list[str]:
    """Last name components of the model's ``torch.nn.Linear`` layers (what LoRA can target)."""
    import torch

    return sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules()
                   if isinstance(m, torch.nn.Linear) and name})


def add_lora(model: Any, settings: LoraSettings, task_type: str | None = None) -> Any:
    """Freeze ``model`` and wrap it with LoRA adapters (a ``peft`` model); the base weights are shared.

    Refuses a target that names no linear layer of the model, naming the ones it has. ``task_type``:
    ``"SEQ_CLS"`` or ``"CAUSAL_LM"`` (peft's task wrappers) or None (a plain ``PeftModel``).
    """
    require("peft", "llm", "LoRA fine-tuning")
    from peft import LoraConfig, TaskType, get_peft_model

    available = linear_module_names(model)
    for t in settings.targets:
        if t not in available:
            raise InputError(f"LoRA target module {t!r} is not a linear layer of this model{did_you_mean(t, available)}",
                             fix=f"choose among {', '.join(available)}")
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules() if n}
    for m in settings.modules_to_save:
        if m not in names:
            raise InputError(f"module {m!r} to train fully is not in this model", fix="check the model's head name")
    config = LoraConfig(r=settings.rank, lora_alpha=settings.scale_alpha, lora_dropout=float(settings.dropout),
                        target_modules=list(settings.targets), modules_to_save=list(settings.modules_to_save) or None,
                        task_type=getattr(TaskType, task_type) if task_type else None, bias="none")
    return get_peft_model(model, config)


def parameter_counts(model: Any) -> dict[str, int]:
    """``{"trainable": n, "total": n}`` parameters (a peft model counts its base once)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return {"trainable": int(trainable), "total": int(total)}
