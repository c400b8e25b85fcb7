"""LambdaMART: gradient-boosted trees trained with LambdaRank gradients, via LightGBM.

Method: "From RankNet to LambdaRank to LambdaMART: An Overview" (Burges, 2010); implementation:
LightGBM's ``lambdarank`` objective ("LightGBM: A Highly Efficient Gradient Boosting Decision Tree",
Ke et al., 2017). rankstack adds: early stopping on the validation fold's NDCG@10, a seeded search
over a small grid scored on the validation fold only, deterministic training, and an atomic saved
model (LightGBM's text format + a checksummed JSON manifest; never pickle).

Early stopping uses LightGBM's own NDCG@10, which scores a query without relevant documents 1
(trec_eval scores it 0). On one validation set the two differ by a constant per query, so they pick
the same iteration; the grid search ranks configurations with ``rankstack.evaluate`` (trec_eval).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.data.letor import LetorData
from rankstack.errors import InputError, require
from rankstack.ltr.data import NORMALISATIONS, normalise, scores_to_run
from rankstack.registry import register
from rankstack.storage import atomic_directory, read_manifest, write_manifest
from rankstack.types import Run

__all__ = ["LambdaMART", "DEFAULT_GRID", "Trial", "load_model"]

log = logging.getLogger(__name__)

KIND = "ltr-lambdamart"
FORMAT_VERSION = 1
MODEL_FILE = "model.txt"

#: Tree and learning parameters the spec may set (LightGBM names).
TREE_PARAMS = {
    "num_leaves": 31, "learning_rate": 0.05, "min_data_in_leaf": 20, "min_sum_hessian_in_leaf": 1e-3,
    "feature_fraction": 1.0, "bagging_fraction": 1.0, "bagging_freq": 0, "lambda_l1": 0.0,
    "lambda_l2": 0.0, "max_depth": -1, "max_bin": 255, "lambdarank_truncation_level": 30,
}

#: The seeded search space (``max_trials`` configurations are drawn from it, else all are tried).
DEFAULT_GRID: dict[str, list[Any]] = {
    "num_leaves": [7, 15, 31, 63],
    "learning_rate": [0.02, 0.05, 0.1],
    "min_data_in_leaf": [10, 50, 100],
    "feature_fraction": [0.7, 1.0],
    "lambda_l2": [0.0, 10.0],
}


@dataclass(frozen=True)
class Trial:
    """One configuration tried by the search: its parameters, validation NDCG@10 and best iteration."""

    params: dict[str, Any]
    valid_ndcg10: float
    best_iteration: int


def _lgb():
    return require("lightgbm", "ltr", "LambdaMART")


def _groups(data: LetorData) -> np.ndarray:
    return data.group_sizes()


class LambdaMART:
    """LambdaMART over LETOR-style features. ``fit(train, valid)`` then ``predict(data) -> Run``.

    ``tune=True`` searches ``grid`` (default :data:`DEFAULT_GRID`; ``max_trials`` seeded draws from
    it, default 16), scoring each configuration by trec_eval NDCG@10 on ``valid`` and keeping the
    best model. The test data never enters ``fit``.
    """

    name = "lambdamart"

    def __init__(self, num_boost_round: int = 2000, early_stopping_rounds: int = 100, eval_at: int = 10,
                 seed: int = 0, num_threads: int = 1, deterministic: bool = True,
                 normalisation: str = "none", label_gain: Sequence[float] | None = None,
                 tune: bool = False, grid: Mapping[str, Sequence[Any]] | None = None,
                 max_trials: int | None = 16, **tree_params: Any) -> None:
        unknown = sorted(set(tree_params) - set(TREE_PARAMS))
        if unknown:
            import difflib

            hints = [f"{u!r}" + (f" (did you mean {c[0]!r}?)" if (c := difflib.get_close_matches(
                u, list(TREE_PARAMS), n=1)) else "") for u in unknown]
            raise InputError(f"lambdamart: unknown parameter {', '.join(hints)}",
                             fix=f"tree parameters are {', '.join(TREE_PARAMS)}")
        for key, value, lo in (("num_boost_round", num_boost_round, 1), ("early_stopping_rounds",
                               early_stopping_rounds, 0), ("eval_at", eval_at, 1), ("num_threads", num_threads, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise InputError(f"lambdamart: {key} must be an integer >= {lo}, got {value!r}")
        if normalisation not in NORMALISATIONS:
            raise InputError(f"lambdamart: unknown normalisation {normalisation!r}",
                             fix=f"choose one of {', '.join(NORMALISATIONS)}")
        if grid is not None:
            bad = sorted(set(grid) - set(TREE_PARAMS))
            if bad or not all(isinstance(v, (list, tuple)) and v for v in grid.values()):
                raise InputError(f"lambdamart: bad grid {dict(grid)!r}",
                                 fix=f"map tree parameters ({', '.join(TREE_PARAMS)}) to non-empty lists")
        self.tree_params = {**TREE_PARAMS, **tree_params}
        self.num_boost_round = num_boost_round
        self.early_stopping_rounds = early_stopping_rounds
        self.eval_at = eval_at
        self.seed = int(seed)
        self.num_threads = num_threads
        self.deterministic = deterministic
        self.normalisation = normalisation
        self.label_gain = list(label_gain) if label_gain is not None else None
        self.tune = bool(tune)
        self.grid = {k: list(v) for k, v in (grid or DEFAULT_GRID).items()}
        self.max_trials = max_trials
        self.booster: Any = None
        self.best_iteration: int = 0
        self.trials: list[Trial] = []
        self.n_features: int | None = None

    # parameters ---------------------------------------------------------------------------------
    def lightgbm_params(self, tree_params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The exact LightGBM parameter dict used for training (recorded in the manifest)."""
        params: dict[str, Any] = {
            "objective": "lambdarank", "metric": "ndcg", "eval_at": [self.eval_at],
            "seed": self.seed, "num_threads": self.num_threads, "deterministic": self.deterministic,
            "force_row_wise": True, "verbosity": -1,
            **(tree_params if tree_params is not None else self.tree_params),
        }
        if self.label_gain is not None:
            params["label_gain"] = self.label_gain
        return params

    @property
    def params(self) -> dict[str, Any]:
        return {"num_boost_round": self.num_boost_round, "early_stopping_rounds": self.early_stopping_rounds,
                "eval_at": self.eval_at, "seed": self.seed, "normalisation": self.normalisation,
                "label_gain": self.label_gain, **self.tree_params}

    def configurations(self) -> list[dict[str, Any]]:
        """Tree-parameter sets the search tries: the grid, or ``max_trials`` seeded draws from it."""
        keys = sorted(self.grid)
        combos = [dict(zip(keys, values)) for values in itertools.product(*(self.grid[k] for k in keys))]
        if self.max_trials is not None and self.max_trials < len(combos):
            rng = np.random.default_rng(self.seed)
            pick = sorted(rng.choice(len(combos), size=self.max_trials, replace=False).tolist())
            combos = [combos[i] for i in pick]
        return [{**self.tree_params, **c} for c in combos]

    # training -----------------------------------------------------------------------------------
    def _train(self, tree_params: Mapping[str, Any], train: LetorData, valid: LetorData | None):
        lgb = _lgb()
        dtrain = lgb.Dataset(train.features, label=train.labels, group=_groups(train),
                             params={"max_bin": tree_params.get("max_bin", 255), "verbosity": -1},
                             free_raw_data=False)
        callbacks = []
        valid_sets, valid_names = [], []
        if valid is not None and len(valid):
            dvalid = lgb.Dataset(valid.features, label=valid.labels, group=_groups(valid), reference=dtrain)
            valid_sets, valid_names = [dvalid], ["valid"]
            if self.early_stopping_rounds:
                callbacks.append(lgb.early_stopping(self.early_stopping_rounds, first_metric_only=True,
                                                    verbose=False))
        booster = lgb.train(self.lightgbm_params(tree_params), dtrain, num_boost_round=self.num_boost_round,
                            valid_sets=valid_sets, valid_names=valid_names, callbacks=callbacks)
        best = booster.best_iteration if booster.best_iteration > 0 else booster.current_iteration()
        return booster, int(best)

    def fit(self, train: LetorData, valid: LetorData | None = None) -> LambdaMART:
        """Train on ``train``; early-stop (and, with ``tune``, select parameters) on ``valid``."""
        if len(train) == 0:
            raise InputError("lambdamart: the training data is empty")
        if self.tune and (valid is None or len(valid) == 0):
            raise InputError("lambdamart: tune=True needs a validation set", fix="pass valid= or set tune=False")
        if valid is not None and valid.n_features != train.n_features:
            raise InputError(f"lambdamart: validation data has {valid.n_features} features, training data "
                             f"{train.n_features}")
        train = normalise(train, self.normalisation)
        valid = normalise(valid, self.normalisation) if valid is not None else None
        self.n_features = train.n_features
        if not self.tune:
            self.booster, self.best_iteration = self._train(self.tree_params, train, valid)
            return self
        from rankstack.evaluate import evaluate

        qrels = valid.qrels()
        best: tuple[float, Any, int, dict] | None = None
        self.trials = []
        for config in self.configurations():
            booster, it = self._train(config, train, valid)
            scores = booster.predict(valid.features, num_iteration=it, num_threads=self.num_threads)
            value = evaluate(scores_to_run(valid, scores), qrels, ["nDCG@10"]).mean["nDCG@10"]
            changed = {k: config[k] for k in self.grid}
            self.trials.append(Trial(changed, float(value), it))
            log.info("lambdamart search %s: valid nDCG@10 %.4f at %d trees", changed, value, it)
            if best is None or value > best[0] + 1e-12:
                best = (value, booster, it, config)
        assert best is not None
        _, self.booster, self.best_iteration, self.tree_params = best
        return self

    # prediction ---------------------------------------------------------------------------------
    def _require_model(self) -> None:
        if self.booster is None:
            raise InputError("lambdamart: the model is not trained", fix="call fit(...) or load a saved model")

    def predict_scores(self, data: LetorData) -> np.ndarray:
        """One score per row of ``data`` (higher = more relevant)."""
        self._require_model()
        if data.n_features != self.n_features:
            raise InputError(f"lambdamart: data has {data.n_features} features, the model expects "
                             f"{self.n_features}", fix="use the feature set the model was trained on")
        data = normalise(data, self.normalisation)
        if len(data) == 0:
            return np.zeros(0)
        return np.asarray(self.booster.predict(data.features, num_iteration=self.best_iteration or None,
                                               num_threads=self.num_threads), dtype=np.float64)

    def predict(self, data: LetorData, name: str | None = None) -> Run:
        return scores_to_run(data, self.predict_scores(data), name=name or self.name)

    # persistence --------------------------------------------------------------------------------
    def save(self, path: str | Path, *, overwrite: bool = False) -> None:
        """Write ``model.txt`` (LightGBM text, best iteration only) + ``manifest.json`` atomically.

        ``overwrite``: replace a saved LambdaMART model (anything else at ``path`` is refused)."""
        self._require_model()
        with atomic_directory(path, overwrite=overwrite) as tmp:
            self.booster.save_model(str(tmp / MODEL_FILE), num_iteration=self.best_iteration or None)
            write_manifest(tmp, KIND, FORMAT_VERSION, {**self.params, "num_threads": self.num_threads,
                                                       "deterministic": self.deterministic},
                           libraries=["lightgbm", "numpy"],
                           extra={"n_features": self.n_features, "best_iteration": self.best_iteration,
                                  "lightgbm_params": _jsonable(self.lightgbm_params()),
                                  "trials": [t.__dict__ for t in self.trials]})

    @classmethod
    def load(cls, path: str | Path, num_threads: int | None = None, verify: bool = True) -> LambdaMART:
        """Load a saved model; refuses a folder whose files do not match the manifest's checksums."""
        path = Path(path)
        manifest = read_manifest(path, KIND, (FORMAT_VERSION,), verify=verify)
        p = dict(manifest["params"])
        threads = p.pop("num_threads", 1) if num_threads is None else num_threads
        p.pop("num_threads", None)
        deterministic = p.pop("deterministic", True)
        tree = {k: p.pop(k) for k in list(p) if k in TREE_PARAMS}
        model = cls(num_threads=threads, deterministic=deterministic, **p, **tree)
        lgb = _lgb()
        try:
            model.booster = lgb.Booster(model_file=str(path / MODEL_FILE))
        except lgb.basic.LightGBMError as exc:
            raise InputError(f"LightGBM cannot read the model ({exc})", path=path / MODEL_FILE) from None
        model.best_iteration = 0  # the file holds exactly the best iteration's trees
        model.n_features = int(manifest["n_features"])
        model.trials = [Trial(**t) for t in manifest.get("trials", [])]
        return model


def _jsonable(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}


def load_model(path: str | Path, **kwargs: Any):
    """Load any saved rankstack LTR model (LambdaMART or neural) by its manifest kind."""
    import json

    from rankstack.storage import MANIFEST

    mpath = Path(path) / MANIFEST
    kind = None
    if mpath.is_file():
        try:
            kind = json.loads(mpath.read_text("utf-8")).get("kind")
        except (json.JSONDecodeError, UnicodeDecodeError):
            kind = None
    if kind is not None and kind.startswith("ltr-neural"):
        from rankstack.ltr.neural import NeuralRanker

        return NeuralRanker.load(path, **kwargs)
    return LambdaMART.load(path, **kwargs)


@register("lambdamart", kind="ltr_model")
def build_lambdamart(**params: Any) -> LambdaMART:
    """LambdaMART (LightGBM lambdarank); args are :class:`LambdaMART`'s (tree params, tune, grid...)."""
    return LambdaMART(**params)
