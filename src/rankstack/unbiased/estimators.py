"""Learners from click logs: naive, IPS (known or estimated propensities), DLA and regression EM.

All of them train the *same* feature scorer (an MLP over LETOR features from
``rankstack.ltr.neural.build_module``; ``hidden=()`` is a linear model) with the *same* loss from
``rankstack.losses`` (ListNet softmax cross-entropy by default, the loss of Ai et al. 2018) and
differ only in the labels and per-item ``weights`` they give it -- so a difference in NDCG is the
estimator, not the model. The full-information reference is the same scorer trained on the true
labels of every training document.

Sessions are first aggregated per distinct shown list (:func:`aggregate`): with a deterministic
logging ranker every session of a query shows the same list. The IPS softmax loss of Ai et al.
2018, ``-sum_clicked w_i log softmax(s)_i`` summed over a query's sessions, is linear in the clicks,
so it equals ``N * sum_i ctr_i w_i (-log softmax(s)_i)`` on the list's click *rates*; the shared
ListNet on (labels = click rates, weights = w) is that loss divided by the query's total click rate
(ListNet normalises labels per list), i.e. the same per-query objective with a per-query weight.
Training on ~500 lists instead of 10^5 sessions is what makes a study take seconds.

* ``naive``: click rates as labels -- biased towards documents the logging ranker put on top.
* ``ips``: click rates with per-item weights ``p_1 / p_k`` (Joachims, Swaminathan, Schnabel,
  "Unbiased Learning-to-Rank with Biased Feedback", WSDM 2017; Wang et al., "Learning to Rank with
  Selection Bias in Personal Search", SIGIR 2016). Propensities are relative to rank 1 (the scale
  only changes the step size); they are the logged (oracle) ones or any estimate by rank, e.g. from
  swap interventions (:mod:`rankstack.unbiased.propensity`).
* ``dla``: Dual Learning Algorithm (Ai, Bi, Luo, Guo, Croft, "Unbiased Learning to Rank with
  Unbiased Propensity Estimation", SIGIR 2018). See :func:`train_dla` for why it has its own loop.
* ``rem``: regression EM (Wang, Golbandi, Bendersky, Metzler, Najork, "Position Bias Estimation for
  Unbiased Learning to Rank in Personal Search", WSDM 2018). See :func:`train_rem`.

torch is imported inside functions only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rankstack.data.letor import LetorData
from rankstack.errors import InputError
from rankstack.hardware import torch_threads
from rankstack.registry import lookup, register
from rankstack.unbiased.clicklog import ClickLog

__all__ = ["ClickLists", "aggregate", "FitConfig", "ULTRModel", "train_full_info", "train_naive",
           "train_ips", "train_dla", "train_rem", "ESTIMATORS", "train_estimator", "logged_propensity_by_rank"]

log = logging.getLogger(__name__)

#: The registered click learners (kind ``estimator``); a test keeps this in step with the registry.
ESTIMATORS = ("naive", "ips", "dla", "rem")


# ----------------------------------------------------------------------------- data
@dataclass(frozen=True, eq=False)
class ClickLists:
    """Sessions aggregated per distinct shown list, in shown order.

    ``features`` float32 [N, K, F], ``mask`` bool [N, K], ``sessions`` [N] (sessions that showed the
    list), ``clicks`` [N, K] click counts, ``ips_clicks`` [N, K] sum of click/propensity over the
    sessions (None when the log has no propensities), ``qids`` [N].
    """

    qids: list[str]
    features: np.ndarray
    mask: np.ndarray
    sessions: np.ndarray
    clicks: np.ndarray
    ips_clicks: np.ndarray | None

    def __len__(self) -> int:
        return len(self.qids)

    @property
    def list_size(self) -> int:
        return int(self.mask.shape[1])

    @property
    def click_rates(self) -> np.ndarray:
        return self.clicks / self.sessions[:, None]


def aggregate(log_: ClickLog, data: LetorData) -> ClickLists:
    """Group sessions by (query, shown list) and attach each shown document's features from ``data``.

    Every (qid, docid) in the log must be a row of ``data`` (the training fold the log was made on).
    """
    if len(log_) == 0:
        raise InputError("the click log has no sessions")
    row_of = {(q, d): i for i, (q, d) in enumerate(zip(data.qids.tolist(), data.docids.tolist()))}
    keys = ["\x1f".join([q, *row[:n]]) for q, row, n in
            zip(log_.qids.tolist(), log_.docids.tolist(), log_.lengths.tolist())]
    uniq, inverse = np.unique(np.array(keys, dtype=object), return_inverse=True)
    n, k = len(uniq), log_.max_length
    sessions = np.bincount(inverse, minlength=n).astype(np.float64)
    clicks = np.zeros((n, k))
    np.add.at(clicks, inverse, log_.clicks.astype(np.float64))
    ips = None
    if log_.propensities is not None:
        safe = np.where(log_.propensities > 0, log_.propensities, 1.0)
        ips = np.zeros((n, k))
        np.add.at(ips, inverse, log_.clicks / safe)
    first = np.zeros(n, dtype=np.int64)
    first[inverse[::-1]] = np.arange(len(inverse))[::-1]
    feats = np.zeros((n, k, data.n_features), dtype=np.float32)
    mask = np.zeros((n, k), dtype=bool)
    qids = []
    for j, s in enumerate(first.tolist()):
        q = str(log_.qids[s])
        qids.append(q)
        for r in range(int(log_.lengths[s])):
            d = str(log_.docids[s, r])
            row = row_of.get((q, d))
            if row is None:
                raise InputError(f"click log shows document {d!r} for query {q!r}, which the feature data "
                                 f"{data.name!r} does not contain",
                                 fix="train on the LETOR fold the clicks were simulated on (same --folds and --fold)")
            feats[j, r] = data.features[row]
            mask[j, r] = True
    return ClickLists(qids, feats, mask, sessions, clicks, ips)


def logged_propensity_by_rank(log_: ClickLog) -> np.ndarray:
    """Mean logged propensity at each rank (over sessions showing it); needs a log with propensities."""
    if log_.propensities is None:
        raise InputError("the click log has no propensities",
                         fix="simulate with propensities logged, or use an estimator that estimates them")
    m = log_.mask
    return (log_.propensities * m).sum(0) / np.maximum(m.sum(0), 1)


# ----------------------------------------------------------------------------- configuration / model
@dataclass
class FitConfig:
    """Scorer and optimisation settings shared by every estimator (so comparisons are fair).

    Defaults were chosen once, on MQ2008 fold 1's *validation* part with the full-information
    learner (linear vs MLP(32), 20/60/150 epochs, lr 3e-3/1e-2): the linear scorer was as good as
    the MLP on validation (0.483 vs 0.478 nDCG@10) and the MLP overfits with more epochs, so the
    default is linear, 60 epochs, lr 1e-2. Click learners use the same settings, untuned.

    ``hidden``: MLP hidden sizes (``()`` = linear). ``loss``: a ``rankstack.losses`` name/spec.
    ``max_weight``: clip inverse-propensity weights (None: no clipping, unbiased but higher variance).
    """

    hidden: tuple[int, ...] = ()
    loss: Any = "listnet"
    epochs: int = 60
    batch_size: int = 32
    lr: float = 1e-2
    weight_decay: float = 0.0
    seed: int = 0
    num_threads: int = 1
    max_weight: float | None = None
    em_iterations: int = 40
    em_epochs: int = 2

    def to_dict(self) -> dict[str, Any]:
        return {"hidden": list(self.hidden), "loss": self.loss, "epochs": self.epochs,
                "batch_size": self.batch_size, "lr": self.lr, "weight_decay": self.weight_decay,
                "seed": self.seed, "max_weight": self.max_weight, "em_iterations": self.em_iterations,
                "em_epochs": self.em_epochs}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FitConfig:
        known = set(cls.__dataclass_fields__)
        bad = sorted(set(d) - known)
        if bad:
            raise InputError(f"unknown training setting(s) {bad}", fix=f"settings are {', '.join(sorted(known))}")
        d = dict(d)
        if "hidden" in d:
            d["hidden"] = tuple(int(h) for h in d["hidden"])
        return cls(**d)


@dataclass
class ULTRModel:
    """A trained scorer plus what the estimator learned about examination.

    ``propensities``: relative examination propensities by rank (rank 1 = 1) the estimator used or
    estimated, or None (naive / full information). ``ranker``: a ``rankstack.ltr.neural.NeuralRanker``
    holding the module, so ``predict``/``save`` are the LTR ones.
    """

    name: str
    ranker: Any
    propensities: np.ndarray | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def predict_scores(self, data: LetorData) -> np.ndarray:
        return self.ranker.predict_scores(data)

    def predict(self, data: LetorData, name: str | None = None):
        return self.ranker.predict(data, name=name or self.name)


def _torch():
    from rankstack.errors import require

    return require("torch", "torch", "unbiased learning to rank")


def _new_ranker(n_features: int, cfg: FitConfig):
    """A NeuralRanker shell around a freshly initialised, seeded MLP (linear if hidden is empty)."""
    torch = _torch()
    from rankstack.ltr.neural import NeuralRanker, build_module

    ranker = NeuralRanker(arch="mlp", hidden=list(cfg.hidden), dropout=0.0, seed=cfg.seed,
                          num_threads=cfg.num_threads, loss=cfg.loss)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        ranker.module = build_module("mlp", n_features, ranker.config)
    ranker.n_features = n_features
    return ranker


def _fit_fixed(ranker, features: np.ndarray, labels: np.ndarray, mask: np.ndarray,
               weights: np.ndarray | None, cfg: FitConfig) -> list[dict[str, Any]]:
    """Train ``ranker.module`` with the shared Trainer on fixed labels/weights (no label peeking:
    a fixed number of epochs, no validation on true labels)."""
    torch = _torch()
    from rankstack.train.trainer import Trainer

    x, y, m = torch.from_numpy(features), torch.from_numpy(labels.astype(np.float32)), torch.from_numpy(mask)
    w = None if weights is None else torch.from_numpy(weights.astype(np.float32))

    def collate(idx: list[int]):
        i = torch.as_tensor(idx)
        width = max(int(m[i].sum(1).max()), 1)
        return ((x[i, :width], m[i, :width]), y[i, :width], m[i, :width],
                None if w is None else w[i, :width])

    trainer = Trainer(ranker.module, cfg.loss, optimizer="adam", lr=cfg.lr, weight_decay=cfg.weight_decay,
                      schedule="constant", epochs=cfg.epochs, batch_size=cfg.batch_size, grad_clip=None,
                      precision="fp32", seed=cfg.seed, num_threads=cfg.num_threads, progress=False)
    result = trainer.fit(list(range(len(features))), collate)
    ranker.module.eval()
    return list(result.history)


def _relative(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 1 or not len(p) or np.any(~np.isfinite(p)) or np.any(p <= 0):
        raise InputError(f"propensities by rank must be positive finite numbers, got {np.round(p, 4).tolist()}",
                         fix="floor estimated propensities at a small positive value")
    return p / p[0]


# ----------------------------------------------------------------------------- learners
def train_full_info(train: LetorData, cfg: FitConfig = FitConfig()) -> ULTRModel:
    """The reference: the same scorer and loss on the true labels of every training document."""
    from rankstack.ltr.data import pad_lists

    lists = pad_lists(train)
    ranker = _new_ranker(train.n_features, cfg)
    hist = _fit_fixed(ranker, lists.features, lists.labels, lists.mask, None, cfg)
    return ULTRModel("full-info", ranker, None, hist)


@register("naive", kind="estimator")
def train_naive(lists: ClickLists, cfg: FitConfig = FitConfig()) -> ULTRModel:
    """Clicks as relevance labels: learns the logging ranker's position bias along with relevance."""
    ranker = _new_ranker(lists.features.shape[2], cfg)
    hist = _fit_fixed(ranker, lists.features, lists.click_rates, lists.mask, None, cfg)
    return ULTRModel("naive", ranker, None, hist)


@register("ips", kind="estimator")
def train_ips(lists: ClickLists, propensities: np.ndarray | str = "logged", cfg: FitConfig = FitConfig(),
              name: str = "ips") -> ULTRModel:
    """Inverse propensity scoring: click rates with per-item weights ``p_1 / p_rank``.

    ``propensities="logged"`` uses the propensities stored with each session (oracle when the log
    came from a simulator: the weight of a rank is ``sum(click/p) / sum(click)``); an array gives
    examination propensities by rank (any scale), e.g. from swap interventions. ``cfg.max_weight``
    clips weights (Joachims et al. 2017 discuss clipping as a bias/variance trade-off).
    """
    k = lists.list_size
    if isinstance(propensities, str):
        if propensities != "logged":
            raise InputError(f"propensities must be 'logged' or an array by rank, got {propensities!r}")
        if lists.ips_clicks is None:
            raise InputError("the click log has no propensities, so IPS cannot use logged ones",
                             fix="pass estimated propensities by rank (e.g. --propensities swap)")
        # Per-(list, rank) weight reproducing sum(click/p) exactly; where nothing was clicked the
        # weight is irrelevant (its label is 0).
        ratio = np.where(lists.clicks > 0, lists.ips_clicks / np.maximum(lists.clicks, 1e-12), 1.0)
        first = ratio[:, :1]
        # Scale by the typical rank-1 weight so magnitudes stay comparable to the estimated case.
        ref = float(np.median(first[lists.clicks[:, 0] > 0])) if (lists.clicks[:, 0] > 0).any() else 1.0
        weights = ratio / ref
        rel = None
    else:
        p = np.asarray(propensities, dtype=np.float64)
        if len(p) < k:
            raise InputError(f"{len(p)} propensities by rank but lists show up to {k} documents",
                             fix=f"give at least {k} propensities")
        rel = _relative(p[:k])
        weights = np.broadcast_to(1.0 / rel, lists.mask.shape).copy()
    if cfg.max_weight is not None:
        weights = np.minimum(weights, cfg.max_weight)
    ranker = _new_ranker(lists.features.shape[2], cfg)
    hist = _fit_fixed(ranker, lists.features, lists.click_rates, lists.mask, weights * lists.mask, cfg)
    if rel is None:
        p = np.zeros(k)
        ok = lists.clicks.sum(0) > 0
        p[ok] = lists.clicks.sum(0)[ok] / lists.ips_clicks.sum(0)[ok]
        rel = p / p[0] if p[0] > 0 else p
    return ULTRModel(name, ranker, rel, hist)


@register("dla", kind="estimator")
def train_dla(lists: ClickLists, cfg: FitConfig = FitConfig()) -> ULTRModel:
    """Dual Learning Algorithm (Ai et al., SIGIR 2018): ranker and propensity model learned together.

    Propensity model: one logit ``g_k`` per rank (ULTRA's DLA feeds a one-hot position to a linear
    layer, which is the same thing). Each step computes, with the other model frozen,

    * ranker loss: softmax cross-entropy of the ranker's scores on the clicks, per-item weights
      ``psi_1 / psi_k = exp(g_1 - g_k)`` (inverse propensity weighting, IPW);
    * propensity loss: softmax cross-entropy of ``g`` on the clicks, per-item weights
      ``phi_1 / phi_k = exp(f(x_1) - f(x_k))`` (inverse relevance weighting, IRW),

    and steps both (ULTRA likewise sums the two losses into one update). Own loop, not the Trainer:
    the Trainer optimises one model on labels/weights fixed by its collate, while here each model's
    weights are the *other* model's current outputs, recomputed every step, and two parameter sets
    move together. Returns the estimated relative propensities ``exp(g_k - g_1)``.
    """
    torch = _torch()
    from rankstack.losses import get_loss

    loss_fn = get_loss(cfg.loss)
    n, k, f = lists.features.shape
    ranker = _new_ranker(f, cfg)
    module = ranker.module
    x = torch.from_numpy(lists.features)
    y = torch.from_numpy(lists.click_rates.astype(np.float32))
    m = torch.from_numpy(lists.mask)
    rng = np.random.default_rng(cfg.seed)
    clip = cfg.max_weight
    history = []
    with torch_threads(cfg.num_threads):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            g = torch.nn.Parameter(torch.zeros(k))
            opt = torch.optim.Adam([{"params": module.parameters(), "weight_decay": cfg.weight_decay},
                                    {"params": [g]}], lr=cfg.lr)
            module.train()
            for epoch in range(cfg.epochs):
                order = rng.permutation(n)
                total_r = total_p = 0.0
                for start in range(0, n, cfg.batch_size):
                    idx = torch.from_numpy(order[start:start + cfg.batch_size])
                    bx, by, bm = x[idx], y[idx], m[idx]
                    s = module((bx, bm))
                    gl = g.unsqueeze(0).expand_as(s)
                    ipw = torch.exp(gl[:, :1] - gl).detach()
                    irw = torch.exp(s[:, :1] - s).detach()
                    if clip is not None:
                        ipw, irw = ipw.clamp(max=clip), irw.clamp(max=clip)
                    loss_r = loss_fn(s, by, bm, ipw)
                    loss_p = loss_fn(gl, by, bm, irw)
                    opt.zero_grad()
                    (loss_r + loss_p).backward()
                    opt.step()
                    total_r += float(loss_r.detach()) * len(idx)
                    total_p += float(loss_p.detach()) * len(idx)
                history.append({"epoch": epoch + 1, "ranker_loss": total_r / n, "propensity_loss": total_p / n})
            module.eval()
            prop = torch.exp(g.detach() - g.detach()[0]).numpy().astype(np.float64)
    log.info("dla: estimated relative propensities %s", np.round(prop, 3).tolist())
    return ULTRModel("dla", ranker, prop, history)


@register("rem", kind="estimator")
def train_rem(lists: ClickLists, cfg: FitConfig = FitConfig()) -> ULTRModel:
    """Regression EM (Wang et al., WSDM 2018): ``P(click) = theta_rank * gamma(q, d)``.

    E-step: for a non-click, ``P(E=1, R=0 | C=0) = theta(1-gamma) / (1 - theta gamma)`` and
    ``P(R=1 | C=0) = (1-theta) gamma / (1 - theta gamma)``; a click means E = R = 1. M-step:
    ``theta_k`` = expected examinations at rank k / sessions at rank k (closed form); ``gamma`` is a
    *regression* on features -- the paper fits GBDT to sampled relevance labels; here the shared
    scorer is fitted (``cfg.em_epochs`` Trainer epochs per EM round, warm-started) to the expected
    relevance rates with the pointwise ``bce`` loss on soft labels, weighted by sessions, so
    ``gamma = sigmoid(f(x))``. The ranker is that scorer. Returns ``theta / theta_1``.
    Own outer loop (EM), the Trainer does each regression M-step.
    """
    torch = _torch()
    n, k, f = lists.features.shape
    ranker = _new_ranker(f, cfg)
    mask = lists.mask
    sess = np.broadcast_to(lists.sessions[:, None], mask.shape) * mask
    clicks = lists.clicks
    theta = np.full(k, 0.5)
    x = torch.from_numpy(lists.features)
    m = torch.from_numpy(mask)
    w = (sess / max(float(lists.sessions.mean()), 1e-12)).astype(np.float32)
    history = []
    inner = FitConfig(**{**cfg.__dict__, "loss": "bce", "epochs": cfg.em_epochs})
    for it in range(cfg.em_iterations):
        with torch.no_grad():
            ranker.module.eval()
            gamma = torch.sigmoid(ranker.module((x, m))).double().numpy()
        gamma = np.clip(gamma, 1e-6, 1 - 1e-6)
        th = theta[None, :]
        denom = np.maximum(1.0 - th * gamma, 1e-12)
        non = sess - clicks
        exam = clicks + non * th * (1 - gamma) / denom
        rel = clicks + non * (1 - th) * gamma / denom
        tot = sess.sum(0)
        theta = np.where(tot > 0, exam.sum(0) / np.maximum(tot, 1e-12), theta)
        theta = np.clip(theta, 1e-6, 1.0)
        target = np.where(sess > 0, rel / np.maximum(sess, 1e-12), 0.0)
        _fit_fixed(ranker, lists.features, target, mask, w, inner)
        history.append({"iteration": it + 1, "theta": np.round(theta, 4).tolist()})
    log.info("rem: estimated theta %s", np.round(theta, 3).tolist())
    return ULTRModel("rem", ranker, theta / theta[0], history)


def train_estimator(name: str, lists: ClickLists, cfg: FitConfig = FitConfig(),
                    propensities: np.ndarray | str | None = None) -> ULTRModel:
    """Train the registered estimator ``name`` (``naive``, ``ips``, ``dla``, ``rem``).

    ``propensities`` ("logged" by default, or by rank) goes to estimators that take it (``ips``).
    Unknown names raise the registry's UnknownComponentError with did-you-mean.
    """
    import inspect

    learner = lookup(name, "estimator")
    if "propensities" in inspect.signature(learner).parameters:
        return learner(lists, propensities="logged" if propensities is None else propensities, cfg=cfg)
    return learner(lists, cfg=cfg)
