"""Trainer checkpoints: safetensors weights, the training history and a checksummed manifest.

Why one atomic folder: a checkpoint is rewritten many times during a run (every improved
validation), and a crash at any instant must leave the previous complete checkpoint, never weights
without their manifest or a history that does not match them. Everything, ``history.json``
included, is written into the temporary folder of :func:`rankstack.storage.atomic_directory` and
listed in the manifest; nothing is pickled.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rankstack.errors import InputError, require
from rankstack.storage import atomic_directory, read_manifest, write_manifest

__all__ = ["save_checkpoint", "load_checkpoint", "read_history", "CHECKPOINT_KIND", "CHECKPOINT_FORMAT",
           "WEIGHTS_FILE", "HISTORY_FILE"]

CHECKPOINT_KIND = "checkpoint"
CHECKPOINT_FORMAT = 1
WEIGHTS_FILE = "model.safetensors"
HISTORY_FILE = "history.json"


def save_checkpoint(model: Any, path: str | Path, params: Mapping[str, Any] | None = None,
                    extra: Mapping[str, Any] | None = None, *, history: Sequence[Mapping[str, Any]] | None = None,
                    weights_from: str | Path | None = None, overwrite: bool = True) -> dict:
    """Save ``model``'s weights (and ``history``) with a manifest, atomically; returns the manifest.

    Tied (shared) tensors are stored once (``safetensors.torch.save_model``). ``weights_from``
    copies an existing weights file instead of saving ``model`` (the Trainer uses it to add the
    final history to the best checkpoint without touching its weights). ``overwrite`` (default:
    True, a run rewrites its own checkpoint) replaces an existing checkpoint; any other non-empty
    folder is always refused. ``params``, ``extra`` and ``history`` must be JSON-serialisable.
    """
    st = require("safetensors.torch", "torch", "saving checkpoints")
    with atomic_directory(path, overwrite=overwrite) as tmp:
        if weights_from is not None:
            shutil.copyfile(Path(weights_from), tmp / WEIGHTS_FILE)
        else:
            st.save_model(model, str(tmp / WEIGHTS_FILE))
        if history is not None:
            (tmp / HISTORY_FILE).write_text(json.dumps(list(history), indent=1) + "\n", encoding="utf-8")
        manifest = write_manifest(tmp, CHECKPOINT_KIND, CHECKPOINT_FORMAT, dict(params or {}),
                                  libraries=["torch", "safetensors"], extra=extra)
    return manifest


def load_checkpoint(model: Any, path: str | Path, strict: bool = True) -> dict:
    """Load weights saved by :func:`save_checkpoint` into ``model`` after verifying checksums."""
    st = require("safetensors.torch", "torch", "loading checkpoints")
    manifest = read_manifest(path, CHECKPOINT_KIND, (CHECKPOINT_FORMAT,))
    missing, unexpected = st.load_model(model, str(Path(path) / WEIGHTS_FILE), strict=False)
    if strict and (missing or unexpected):
        raise InputError(f"checkpoint does not fit this model: missing {sorted(missing)[:5]}, "
                         f"unexpected {sorted(unexpected)[:5]}", path=path,
                         fix="build the same architecture that was trained, or pass strict=False")
    return manifest


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """The training history stored with a checkpoint (``[]`` when it has none); verifies the folder."""
    read_manifest(path, CHECKPOINT_KIND, (CHECKPOINT_FORMAT,))
    file = Path(path) / HISTORY_FILE
    if not file.is_file():
        return []
    try:
        return json.loads(file.read_text("utf-8"))
    except ValueError as exc:
        raise InputError(f"{HISTORY_FILE} is not valid JSON ({exc})", path=file, fix="rebuild the checkpoint") from None
