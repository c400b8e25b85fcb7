"""Neural scorers over LTR feature vectors: a per-document MLP and a listwise self-attention model.

* ``mlp`` scores each document alone (the classic neural LTR baseline, e.g. RankNet's network).
* ``attention`` lets the documents of one query attend to each other before scoring, so a score
  depends on the whole candidate list ("Context-Aware Learning to Rank with Self-Attention",
  Pobrotyn, Bartczak, Synowiec, Bialobrzeski, Bojar, 2020): a feed-forward input projection, a stack
  of Transformer encoder blocks without positional encoding (the list is a set), padding masked out
  of attention, and a linear output layer.

Both train on whole padded lists ``[B, L]`` with any registered loss (ListNet, LambdaLoss,
ApproxNDCG, NeuralNDCG, ...: ``rankstack.losses``) and select the epoch with the best validation
nDCG@10 under ``rankstack.evaluate`` (trec_eval). Models are saved as safetensors + a checksummed
JSON manifest (no pickle). torch is imported only when a model is built.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.data.letor import LetorData
from rankstack.errors import InputError, require
from rankstack.ltr.data import NORMALISATIONS, normalise, pad_lists, scores_to_run
from rankstack.registry import parse_spec, register
from rankstack.storage import atomic_directory, read_manifest, write_manifest
from rankstack.types import Run

__all__ = ["NeuralRanker", "ARCHITECTURES", "build_module"]

log = logging.getLogger(__name__)

KIND = "ltr-neural"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"

#: Architecture hyper-parameters and their defaults, per model name.
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "mlp": {"hidden": [128, 64], "dropout": 0.1},
    "attention": {"d_model": 64, "heads": 2, "layers": 2, "ff": 128, "dropout": 0.1, "fc_hidden": 64},
}


def _torch():
    return require("torch", "torch", "neural LTR models")


def build_module(arch: str, n_features: int, config: Mapping[str, Any]):
    """The torch module for ``arch``: ``module((features [B, L, F], mask [B, L])) -> scores [B, L]``.

    One tuple argument because the shared Trainer calls ``model(model_inputs)``.
    """
    torch = _torch()
    nn = torch.nn

    class MLPScorer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers: list[Any] = []
            width = n_features
            for h in config["hidden"]:
                layers += [nn.Linear(width, int(h)), nn.ReLU(), nn.Dropout(float(config["dropout"]))]
                width = int(h)
            layers.append(nn.Linear(width, 1))
            self.net = nn.Sequential(*layers)

        def forward(self, inputs):
            x, _mask = inputs
            return self.net(x).squeeze(-1)

    class AttentionScorer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d = int(config["d_model"])
            self.input = nn.Sequential(nn.Linear(n_features, int(config["fc_hidden"])), nn.ReLU(),
                                       nn.Linear(int(config["fc_hidden"]), d))
            block = nn.TransformerEncoderLayer(d, int(config["heads"]), int(config["ff"]),
                                               float(config["dropout"]), batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(block, int(config["layers"]), enable_nested_tensor=False)
            self.norm = nn.LayerNorm(d)
            self.output = nn.Linear(d, 1)

        def forward(self, inputs):
            x, mask = inputs
            h = self.encoder(self.input(x), src_key_padding_mask=~mask)
            return self.output(self.norm(h)).squeeze(-1)

    if arch == "mlp":
        return MLPScorer()
    if arch == "attention":
        if int(config["d_model"]) % int(config["heads"]):
            raise InputError(f"attention: d_model {config['d_model']} is not divisible by heads {config['heads']}")
        return AttentionScorer()
    raise InputError(f"unknown neural LTR architecture {arch!r}", fix=f"choose one of {', '.join(ARCHITECTURES)}")


class NeuralRanker:
    """A neural LTR model: ``fit(train, valid)``, ``predict(data) -> Run``, ``save``/``load``.

    Training runs in the shared :class:`rankstack.train.Trainer`: AdamW at a constant ``lr`` on
    whole lists (``batch_size`` queries per step; lists longer than ``max_len`` are cut for training
    only), ``epochs`` passes, validation nDCG@10 (``rankstack.evaluate``) after every epoch, the best
    epoch's weights kept, ``patience`` epochs without improvement stop early. fp32 by default: these
    models are too small for bf16 to pay. Seeded: weights, shuffling and dropout depend on ``seed``.
    """

    def __init__(self, arch: str = "mlp", loss: str | Mapping[str, Any] = "listnet", epochs: int = 30,
                 batch_size: int = 16, lr: float = 1e-3, weight_decay: float = 1e-4, patience: int = 10,
                 max_len: int | None = None, normalisation: str = "none", seed: int = 0,
                 num_threads: int = 1, grad_clip: float | None = None, precision: str = "fp32",
                 progress: bool | None = False, **arch_args: Any) -> None:
        if arch not in ARCHITECTURES:
            raise InputError(f"unknown neural LTR architecture {arch!r}",
                             fix=f"choose one of {', '.join(ARCHITECTURES)}")
        unknown = sorted(set(arch_args) - set(ARCHITECTURES[arch]))
        if unknown:
            raise InputError(f"{arch}: unknown argument(s) {unknown}",
                             fix=f"{arch} accepts loss, epochs, batch_size, lr, weight_decay, patience, max_len, "
                                 f"normalisation, seed, num_threads, grad_clip, precision, progress, "
                                 f"{', '.join(ARCHITECTURES[arch])}")
        for key, value, lo in (("epochs", epochs, 1), ("batch_size", batch_size, 1), ("patience", patience, 1),
                               ("num_threads", num_threads, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise InputError(f"{arch}: {key} must be an integer >= {lo}, got {value!r}")
        if not (isinstance(lr, (int, float)) and lr > 0):
            raise InputError(f"{arch}: lr must be a positive number, got {lr!r}")
        if normalisation not in NORMALISATIONS:
            raise InputError(f"{arch}: unknown normalisation {normalisation!r}",
                             fix=f"choose one of {', '.join(NORMALISATIONS)}")
        self.arch = arch
        self.name = arch
        self.loss_spec = {"name": parse_spec(loss)[0], "args": parse_spec(loss)[1]}
        self.config = {**ARCHITECTURES[arch], **arch_args}
        self.epochs, self.batch_size, self.lr, self.weight_decay = epochs, batch_size, float(lr), float(weight_decay)
        self.patience, self.max_len, self.normalisation = patience, max_len, normalisation
        self.seed, self.num_threads = int(seed), num_threads
        self.grad_clip, self.precision, self.progress = grad_clip, precision, progress
        self.module: Any = None
        self.n_features: int | None = None
        self.best_epoch: int | None = None
        self.history: list[dict[str, float]] = []

    @property
    def params(self) -> dict[str, Any]:
        return {"arch": self.arch, "loss": self.loss_spec, "epochs": self.epochs, "batch_size": self.batch_size,
                "lr": self.lr, "weight_decay": self.weight_decay, "patience": self.patience,
                "max_len": self.max_len, "normalisation": self.normalisation, "seed": self.seed,
                "grad_clip": self.grad_clip, "precision": self.precision, **self.config}

    def _threads(self):
        """Torch threads for one fit/predict call, restored afterwards (never process-wide)."""
        from rankstack.hardware import torch_threads

        _torch()
        return torch_threads(self.num_threads or None)

    # training -----------------------------------------------------------------------------------
    def fit(self, train: LetorData, valid: LetorData | None = None) -> NeuralRanker:
        """Train with the shared :class:`rankstack.train.Trainer`; pick the epoch by validation nDCG@10."""
        torch = _torch()
        from rankstack.train.trainer import Trainer

        if len(train) == 0:
            raise InputError(f"{self.arch}: the training data is empty")
        train = normalise(train, self.normalisation)
        valid = normalise(valid, self.normalisation) if valid is not None and len(valid) else None
        if valid is not None and valid.n_features != train.n_features:
            raise InputError(f"{self.arch}: validation data has {valid.n_features} features, training data "
                             f"{train.n_features}")
        self.n_features = train.n_features
        lists = pad_lists(train, max_len=self.max_len)
        x, y, m = (torch.from_numpy(a) for a in (lists.features, lists.labels, lists.mask))

        def collate(batch: list[int]):
            idx = torch.tensor(batch)
            bm = m[idx]
            width = int(bm.sum(1).max())  # trim the padding every list of the batch shares
            bm = bm[:, :width]
            return (x[idx, :width], bm), y[idx, :width], bm, None

        validate = None
        if valid is not None:
            from rankstack.evaluate import evaluate

            qrels = valid.qrels()

            def validate(_module) -> float:
                return evaluate(self._predict_run(valid), qrels, ["nDCG@10"]).mean["nDCG@10"]

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)  # initial weights depend on the seed only
            self.module = build_module(self.arch, self.n_features, self.config)
        trainer = Trainer(self.module, self.loss_spec, optimizer="adamw", lr=self.lr,
                          weight_decay=self.weight_decay, schedule="constant", epochs=self.epochs,
                          batch_size=self.batch_size, grad_clip=self.grad_clip, precision=self.precision,
                          seed=self.seed, validate_fn=validate, patience=self.patience if validate else None,
                          num_threads=self.num_threads or None, progress=self.progress)
        result = trainer.fit(list(range(len(lists))), collate)
        per_epoch = math.ceil(len(lists) / self.batch_size)
        self.best_epoch = math.ceil(result.best_step / per_epoch) if result.best_step else round(result.epochs)
        self.history = [h for h in result.history if h.get("event") == "validation"]
        self.module.eval()
        return self

    # prediction ---------------------------------------------------------------------------------
    def _predict_run(self, data: LetorData) -> Run:
        return scores_to_run(data, self._scores(data), name=self.name)

    def _scores(self, data: LetorData) -> np.ndarray:
        """Score already-normalised data, whole lists at a time (no truncation)."""
        torch = _torch()
        lists = pad_lists(data)
        out = np.zeros(lists.mask.shape, dtype=np.float64)
        was_training = self.module.training
        self.module.eval()
        with torch.no_grad():
            for start in range(0, len(lists), 64):
                sl = slice(start, start + 64)
                out[sl] = self.module((torch.from_numpy(lists.features[sl]),
                                       torch.from_numpy(lists.mask[sl]))).double().numpy()
        self.module.train(was_training)
        return lists.unpad(np.where(lists.mask, out, 0.0), len(data))

    def predict_scores(self, data: LetorData) -> np.ndarray:
        if self.module is None:
            raise InputError(f"{self.arch}: the model is not trained", fix="call fit(...) or load a saved model")
        if data.n_features != self.n_features:
            raise InputError(f"{self.arch}: data has {data.n_features} features, the model expects "
                             f"{self.n_features}", fix="use the feature set the model was trained on")
        if len(data) == 0:
            return np.zeros(0)
        with self._threads():
            return self._scores(normalise(data, self.normalisation))

    def predict(self, data: LetorData, name: str | None = None) -> Run:
        return scores_to_run(data, self.predict_scores(data), name=name or self.name)

    # persistence --------------------------------------------------------------------------------
    def save(self, path: str | Path, *, overwrite: bool = False) -> None:
        """Write ``model.safetensors`` + ``manifest.json`` atomically (``overwrite``: replace a saved model)."""
        if self.module is None:
            raise InputError(f"{self.arch}: the model is not trained", fix="call fit(...) first")
        st = require("safetensors.torch", "torch", "saving neural LTR models")
        with atomic_directory(path, overwrite=overwrite) as tmp:
            state = {k: v.detach().contiguous() for k, v in self.module.state_dict().items()}
            st.save_file(state, str(tmp / WEIGHTS))
            write_manifest(tmp, KIND, FORMAT_VERSION, self.params, libraries=["torch", "safetensors", "numpy"],
                           extra={"n_features": self.n_features, "best_epoch": self.best_epoch,
                                  "history": self.history})

    @classmethod
    def load(cls, path: str | Path, num_threads: int = 1, verify: bool = True) -> NeuralRanker:
        """Load a saved model; refuses files that do not match the manifest's checksums."""
        path = Path(path)
        manifest = read_manifest(path, KIND, (FORMAT_VERSION,), verify=verify)
        p = dict(manifest["params"])
        arch = p.pop("arch")
        model = cls(arch=arch, num_threads=num_threads, **p)
        model.n_features = int(manifest["n_features"])
        model.best_epoch = manifest.get("best_epoch")
        model.history = manifest.get("history", [])
        st = require("safetensors.torch", "torch", "loading neural LTR models")
        model.module = build_module(arch, model.n_features, model.config)
        try:
            model.module.load_state_dict(st.load_file(str(path / WEIGHTS)))
        except (RuntimeError, OSError) as exc:
            raise InputError(f"weights do not fit the {arch} architecture ({exc})", path=path / WEIGHTS) from None
        model.module.eval()
        return model


@register("mlp", kind="ltr_model")
def build_mlp(**args: Any) -> NeuralRanker:
    """Feed-forward scorer over one document's features; args: loss, epochs, hidden, dropout, ..."""
    return NeuralRanker(arch="mlp", **args)


@register("attention", kind="ltr_model")
def build_attention(**args: Any) -> NeuralRanker:
    """Listwise self-attention scorer (Pobrotyn et al. 2020); args: loss, epochs, d_model, heads, ..."""
    return NeuralRanker(arch="attention", **args)
