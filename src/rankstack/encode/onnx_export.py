"""ONNX artefacts of a transformer: exported, optimised (fused), optionally int8-quantised, cached.

Why: ONNX Runtime's transformer optimiser rewrites a BERT-style graph into fused kernels (one
``Attention`` node per layer, ``SkipLayerNormalization``, ``FastGelu``/``BiasGelu``,
``EmbedLayerNormalization``) that run faster than eager PyTorch on any x86 CPU, AVX2 included, and
its dynamic int8 quantisation (``onnxruntime.quantization.quantize_dynamic``) turns the big matrix
products into int8 ones. Nothing here is hand-written: ``torch.onnx.export`` exports,
``onnxruntime.transformers.optimizer.optimize_model`` fuses, ``quantize_dynamic`` quantises.

An export is an artefact: written with :func:`rankstack.storage.atomic_directory` into
``<cache>/onnx/<task>-<variant>-<key>/`` with a checksummed manifest (verified on every load; a
corrupt or foreign folder is rebuilt, never trusted), where the key hashes the source model's
fingerprint and path, the task, the variant and the onnxruntime / torch / transformers versions, so
a changed model or library never reuses a stale graph. ONNX files are protobuf, not pickle.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Literal

from rankstack.errors import InputError, require

__all__ = ["KIND", "FORMAT_VERSION", "TASKS", "VARIANTS", "export_key", "onnx_model", "ort_session",
           "weights_fingerprint"]

log = logging.getLogger(__name__)

KIND = "onnx-model"
FORMAT_VERSION = 3  # 3: per-channel int8, pooler and head kept fp32
TASKS = ("sequence-classification", "token-states")
VARIANTS = ("fp32", "int8")
OPSET = 17
MODEL_FILE = "model.onnx"


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("onnxruntime", "onnx", "torch", "transformers"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "missing"
    return out


def weights_fingerprint(model: Any) -> str:
    """SHA-256 (16 hex) of a loaded model's tensors and config: names its exact weights, wherever they came
    from (a folder, a merged LoRA adapter, a fresh head); ~0.2 s for MiniLM."""
    import torch

    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tensor.dtype).encode())
        h.update(tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    h.update(json.dumps(model.config.to_dict(), sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def export_key(fingerprint: str, source: str, task: str, variant: str) -> str:
    """The cache key of one export: model fingerprint + source path + task + variant + library versions."""
    blob = json.dumps({"fingerprint": fingerprint, "source": source, "task": task, "variant": variant,
                       "versions": _versions(), "format": FORMAT_VERSION, "opset": OPSET}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _export(model: Any, input_names: list[str], task: str, path: Path) -> None:
    """``torch.onnx.export`` of a fp32 copy of ``model`` with dynamic batch and sequence axes."""
    import torch

    model = copy.deepcopy(model).float().eval()
    # the classic attention pattern is what ONNX Runtime's fusion recognises (SDPA exports differently)
    if hasattr(model, "set_attn_implementation"):
        try:
            model.set_attn_implementation("eager")
        except Exception:  # noqa: BLE001 - older/other architectures: fall back to the config field
            model.config._attn_implementation = "eager"
    else:
        model.config._attn_implementation = "eager"

    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args: Any) -> Any:
            out = self.model(**dict(zip(input_names, args)))
            return out.logits if task == "sequence-classification" else out.last_hidden_state

    example = tuple(torch.ones((2, 8), dtype=torch.long) if n != "token_type_ids" else torch.zeros((2, 8), dtype=torch.long)
                    for n in input_names)
    output = "logits" if task == "sequence-classification" else "last_hidden_state"
    axes = {n: {0: "batch", 1: "sequence"} for n in input_names}
    axes[output] = {0: "batch"} if task == "sequence-classification" else {0: "batch", 1: "sequence"}
    kwargs = dict(input_names=input_names, output_names=[output], dynamic_axes=axes, opset_version=OPSET,
                  do_constant_folding=True)
    with torch.inference_mode(False), torch.no_grad():
        try:
            torch.onnx.export(Wrapped(), example, str(path), dynamo=False, **kwargs)
        except TypeError:  # a torch without the dynamo switch
            torch.onnx.export(Wrapped(), example, str(path), **kwargs)


def _optimise(raw: Path, out: Path, config: Any) -> dict[str, int]:
    """ONNX Runtime's transformer fusions (attention, layer norm, GELU); returns the fused-op counts."""
    from onnxruntime.transformers.optimizer import MODEL_TYPES, optimize_model

    model_type = getattr(config, "model_type", "bert")
    if model_type not in MODEL_TYPES:
        log.warning("onnxruntime's optimiser has no fusions for model type %r: using 'bert' patterns", model_type)
        model_type = "bert"
    heads = int(getattr(config, "num_attention_heads", 0) or 0)
    hidden = int(getattr(config, "hidden_size", 0) or 0)
    optimised = optimize_model(str(raw), model_type=model_type, num_heads=heads, hidden_size=hidden,
                               opt_level=None, use_gpu=False)
    optimised.save_model_to_file(str(out))
    stats = optimised.get_fused_operator_statistics() or {}
    return {k: int(v) for k, v in stats.items() if v}


def _quantise(src: Path, out: Path) -> None:
    """Dynamic int8: int8 weights (signed, per channel), uint8 activations quantised per call; the pooler
    and the head stay fp32 (as for torch int8, :func:`rankstack.encode.paths.quantize_linear_int8`)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # fused contrib ops (Attention, SkipLayerNormalization) defeat ONNX shape inference: say their type
    graph = onnx.load(str(src), load_external_data=False).graph
    keep = [n.name for n in graph.node if n.op_type in ("MatMul", "Gemm")
            and any(k in (n.name + " ".join(n.output)).lower() for k in ("pooler", "classifier", "logits"))]
    keep += [f"{name}_MatMul" for name in keep]  # the quantiser first rewrites Gemm as MatMul + Add
    quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=keep,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def onnx_model(model: Any, input_names: list[str], task: Literal["sequence-classification", "token-states"],
               variant: Literal["fp32", "int8"], cache_dir: str | Path, fingerprint: str,
               source: str = "") -> Path:
    """The cached ONNX file of ``model`` (a loaded transformers model) for ``task`` and ``variant``.

    Built once (export + fusions, + quantisation for ``int8``) and reused while the model, its path
    and the libraries are unchanged; ``fingerprint`` must identify the weights (e.g.
    :func:`rankstack.storage.fingerprint` of the model folder).
    """
    if task not in TASKS:
        raise InputError(f"unknown ONNX task {task!r}", fix=f"choose one of {', '.join(TASKS)}")
    if variant not in VARIANTS:
        raise InputError(f"unknown ONNX variant {variant!r}", fix=f"choose one of {', '.join(VARIANTS)}")
    require("onnx", "onnx", "exporting models to ONNX")
    require("onnxruntime", "onnx", "ONNX Runtime inference paths")
    from rankstack.storage import atomic_directory, read_manifest, write_manifest

    key = export_key(fingerprint, source, task, variant)
    folder = Path(cache_dir) / "onnx" / f"{task}-{variant}-{key}"
    if folder.is_dir():
        try:
            manifest = read_manifest(folder, KIND, (FORMAT_VERSION,))
            if manifest["params"].get("key") == key:
                return folder / MODEL_FILE
            log.warning("rebuilding ONNX export %s: it describes another model", folder)
        except InputError as exc:
            log.warning("rebuilding unusable ONNX export %s (%s)", folder, exc)
    log.info("exporting %s to ONNX (%s, %s) into %s", source or "model", task, variant, folder)
    with atomic_directory(folder, overwrite=True) as tmp:
        raw = tmp / "raw.onnx"
        _export(model, input_names, task, raw)
        fused = tmp / ("fused.onnx" if variant == "int8" else MODEL_FILE)
        stats = _optimise(raw, fused, model.config)
        raw.unlink()
        for extra in tmp.glob("raw.onnx*"):  # external-data side files, if any
            extra.unlink()
        if variant == "int8":
            _quantise(fused, tmp / MODEL_FILE)
            fused.unlink()
        write_manifest(tmp, KIND, FORMAT_VERSION,
                       {"key": key, "task": task, "variant": variant, "source": source, "fingerprint": fingerprint,
                        "input_names": list(input_names), "opset": OPSET, "fused_operators": stats},
                       libraries=["onnxruntime", "onnx", "torch", "transformers"])
    log.info("ONNX export ready: %s (fused operators: %s)", folder, stats)
    return folder / MODEL_FILE


def ort_session(path: str | Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session with ``threads`` intra-op threads (None/0: its default).

    Spinning is off: on a shared CPU a spinning idle worker steals cycles from everyone else.
    """
    ort = require("onnxruntime", "onnx", "ONNX Runtime inference paths")
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise InputError(f"ONNX Runtime cannot load the model ({exc})", path=Path(path),
                         fix="delete that cache folder so the export is rebuilt") from None
