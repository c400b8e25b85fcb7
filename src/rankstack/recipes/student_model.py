"""A smaller cross-encoder cut from a bigger one: keep k of its n transformer layers.

Why: a 2-4 layer student scores pairs several times faster than the 6-layer teacher, and starting it
from the teacher's own layers (embeddings, the chosen blocks, pooler and ranking head) gives
distillation a far better start than random layers. DistilBERT (Sanh et al., "DistilBERT, a
distilled version of BERT", 2019) initialises its student from every other teacher layer; "Well-Read
Students Learn Better" (Turc et al., 2019) and "Understanding BERT Rankers Under Distillation"
(Gao, Dai & Callan, ICTIR 2020) study which layers to keep. ``spread`` keeps evenly spaced layers
including the first and the last; ``first`` keeps the bottom k (the top layers are the most
task-specific, so they are the ones cut). Hand-written because transformers has no layer-dropping
helper; it is a ModuleList slice plus ``config.num_hidden_layers``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.errors import InputError
from rankstack.recipes.reranker_data import transformer_blocks

__all__ = ["LAYER_MAPS", "choose_layers", "truncate_layers", "write_student_init"]

log = logging.getLogger(__name__)

LAYER_MAPS = ("spread", "first")


def choose_layers(total: int, keep: int, how: str = "spread") -> list[int]:
    """Indices (0-based, increasing) of the ``keep`` teacher layers a student starts from.

    ``how``: ``"spread"`` (evenly spaced, first and last included: 2 of 6 -> 0, 5; 3 of 6 -> 0, 2, 5),
    ``"first"`` (0 .. keep-1) or an explicit comma list such as ``"0,2,4"``.
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep <= total:
        raise InputError(f"--layers must be between 1 and the teacher's {total} layers, got {keep!r}")
    if how == "first":
        return list(range(keep))
    if how == "spread":
        if keep == 1:
            return [0]
        return [int(round(x)) for x in np.linspace(0, total - 1, keep)]
    try:
        ids = [int(x) for x in how.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--layer-map must be 'spread', 'first' or comma-separated layer numbers, got {how!r}",
                         fix="e.g. --layer-map spread, or --layer-map 0,2,4") from None
    if len(ids) != keep or sorted(set(ids)) != ids or ids[0] < 0 or ids[-1] >= total:
        raise InputError(f"--layer-map {how!r} must list {keep} increasing layer numbers in 0..{total - 1}",
                         fix=f"e.g. --layer-map {','.join(str(i) for i in range(keep))}")
    return ids


def truncate_layers(model: Any, layer_ids: Sequence[int]) -> Any:
    """Keep only ``layer_ids`` of ``model``'s transformer blocks, in place; returns the model.

    The kept blocks are renumbered 0..k-1, so the saved weights and ``config.num_hidden_layers`` describe
    an ordinary k-layer model that transformers and sentence-transformers load.
    """
    import torch

    encoder, layers = transformer_blocks(model)
    ids = list(layer_ids)
    if not ids or any(i < 0 or i >= len(layers) for i in ids):
        raise InputError(f"layer ids {ids} out of range for a {len(layers)}-layer model")
    encoder.layer = torch.nn.ModuleList([layers[i] for i in ids])
    model.config.num_hidden_layers = len(ids)
    for block_i, block in enumerate(encoder.layer):  # attention caches index blocks by number
        attn = getattr(getattr(block, "attention", None), "self", None)
        if attn is not None and hasattr(attn, "layer_idx"):
            attn.layer_idx = block_i
    return model


def write_student_init(source: Any, folder: Path, layers: int, how: str = "spread") -> dict[str, Any]:
    """Save the truncated copy of ``source`` (a loaded CrossEncoderReranker) as a plain transformers
    folder to start training from; returns ``{"layer_ids", "teacher_layers"}``."""
    import copy

    model = copy.deepcopy(source.model)
    _, blocks = transformer_blocks(model)
    ids = choose_layers(len(blocks), layers, how)
    truncate_layers(model, ids).save_pretrained(str(folder), safe_serialization=True)
    source.tokenizer.save_pretrained(str(folder))
    log.info("student init: layers %s of %d", ids, len(blocks))
    return {"layer_ids": ids, "teacher_layers": len(blocks)}
