"""Query-grouped LTR data: per-query normalisation, padded [queries, list, features] tensors, folds.

Why per-query normalisation: LETOR features are on per-query scales (a BM25 score of 20 means
different things for different queries), so LETOR 4.0 ships "QueryLevelNorm" files (min-max within a
query) and neural rankers are sensitive to the scale. Why padding: listwise losses and the
self-attention scorer work on whole candidate lists ``[B, L]`` with a mask marking real documents.

Folds follow the rankstack CLI contract (DESIGN.md): with partition files F1..Fn, fold k tests on
Fk, validates on F(k-1) (F0 = Fn) and trains on the others. These are exactly the five LETOR 4.0
folds of ``MQ2008/readme.txt``; only the numbering differs: the readme's Fold1 tests on S5, so
contract fold k is readme Fold(k mod 5 + 1) (see :attr:`Fold.letor_name`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rankstack.data.letor import LetorData, read_letor
from rankstack.errors import InputError
from rankstack.types import Run

__all__ = ["NORMALISATIONS", "normalise", "PaddedLists", "pad_lists", "Fold", "make_folds",
           "letor_folds", "resolve_fold_files", "no_relevant_queries", "scores_to_run"]

NORMALISATIONS = ("none", "minmax", "zscore")
DEFAULT_PARTS = ("S1", "S2", "S3", "S4", "S5")


def _check_method(method: str) -> None:
    if method not in NORMALISATIONS:
        raise InputError(f"unknown normalisation {method!r}", fix=f"choose one of {', '.join(NORMALISATIONS)}")


def normalise_features(features: np.ndarray, offsets: np.ndarray, method: str = "none") -> np.ndarray:
    """Normalise each feature within each query group ``[offsets[i], offsets[i+1])``.

    ``minmax`` maps a query's values to [0, 1] (LETOR's QueryLevelNorm); ``zscore`` subtracts the
    query mean and divides by the query standard deviation. A feature constant within a query
    becomes 0 under both (it carries no ranking information for that query).
    """
    _check_method(method)
    x = np.asarray(features, dtype=np.float32)
    if method == "none" or len(x) == 0:
        return x.copy()
    sizes = np.diff(offsets)
    group = np.repeat(np.arange(len(sizes)), sizes)
    out = np.empty_like(x, dtype=np.float64)
    xd = x.astype(np.float64)
    if method == "minmax":
        lo = np.minimum.reduceat(xd, offsets[:-1], axis=0)
        hi = np.maximum.reduceat(xd, offsets[:-1], axis=0)
        span = hi - lo
        safe = np.where(span > 0, span, 1.0)
        out = (xd - lo[group]) / safe[group]
        out[(span <= 0)[group]] = 0.0
    else:
        sums = np.add.reduceat(xd, offsets[:-1], axis=0)
        mean = sums / sizes[:, None]
        centred = xd - mean[group]
        var = np.add.reduceat(centred * centred, offsets[:-1], axis=0) / sizes[:, None]
        std = np.sqrt(var)
        safe = np.where(std > 1e-12, std, 1.0)
        out = centred / safe[group]
        out[(std <= 1e-12)[group]] = 0.0
    return out.astype(np.float32)


def normalise(data: LetorData, method: str = "none") -> LetorData:
    """A copy of ``data`` with features normalised per query (``"none"``, ``"minmax"``, ``"zscore"``)."""
    _check_method(method)
    if method == "none":
        return data
    feats = normalise_features(data.features, data.group_offsets(), method)
    return LetorData(data.qids, data.docids, data.labels, feats, name=data.name)


def no_relevant_queries(data: LetorData) -> list[str]:
    """Queries whose documents are all judged 0: trec_eval scores them 0 on nDCG and AP.

    LightGBM's NDCG scores them 1 and many papers drop them, which is why MQ2008 figures differ by
    convention (about 28% of MQ2008 queries have no relevant document).
    """
    offsets = data.group_offsets()
    if len(data) == 0:
        return []
    best = np.maximum.reduceat(data.labels, offsets[:-1])
    return [q for q, b in zip(data.query_ids, best.tolist()) if b <= 0]


def scores_to_run(data: LetorData, scores: np.ndarray, name: str = "ltr") -> Run:
    """A Run holding one score per row of ``data`` (the canonical order is applied by Run)."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(scores) != len(data):
        raise InputError(f"{len(scores)} scores for {len(data)} rows", fix="score every row once")
    return Run(data.qids, data.docids, scores, name=name)


@dataclass(frozen=True, eq=False)
class PaddedLists:
    """Whole candidate lists padded to one length: what listwise losses and list models read.

    ``features`` float32 [Q, L, F], ``labels`` float32 [Q, L] (padding 0), ``mask`` bool [Q, L]
    (True = a real document), ``rows`` int64 [Q, L] the row of each entry in the source LetorData
    (-1 for padding), so scores can be scattered back with :meth:`unpad`.
    """

    features: np.ndarray
    labels: np.ndarray
    mask: np.ndarray
    rows: np.ndarray
    qids: list[str]

    def __len__(self) -> int:
        return int(self.features.shape[0])

    @property
    def list_size(self) -> int:
        return int(self.features.shape[1])

    def unpad(self, scores: np.ndarray, n_rows: int) -> np.ndarray:
        """Scores [Q, L] back to one score per source row (rows cut by ``max_len`` get -inf)."""
        scores = np.asarray(scores)
        if scores.shape != self.mask.shape:
            raise InputError(f"scores have shape {scores.shape}, expected {self.mask.shape}")
        out = np.full(n_rows, -np.inf, dtype=np.float64)
        out[self.rows[self.mask]] = scores[self.mask]
        return out


def pad_lists(data: LetorData, max_len: int | None = None, pad_to: int | None = None) -> PaddedLists:
    """Pad every query's documents into ``[Q, L, F]`` with a mask.

    ``max_len`` truncates longer lists (keeping the first rows, as in the file): use it only for
    training batches; leave it None to score every document. ``pad_to`` forces at least this L.
    """
    if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1):
        raise InputError(f"max_len must be a positive integer or None, got {max_len!r}")
    offsets = data.group_offsets()
    sizes = np.diff(offsets)
    q = len(sizes)
    longest = int(sizes.max()) if q else 0
    length = min(longest, max_len) if max_len else longest
    length = max(length, pad_to or 0, 1)
    feats = np.zeros((q, length, data.n_features), dtype=np.float32)
    labels = np.zeros((q, length), dtype=np.float32)
    mask = np.zeros((q, length), dtype=bool)
    rows = np.full((q, length), -1, dtype=np.int64)
    for i, (s, e) in enumerate(zip(offsets[:-1], offsets[1:])):
        n = min(int(e - s), length)
        feats[i, :n] = data.features[s:s + n]
        labels[i, :n] = data.labels[s:s + n]
        mask[i, :n] = True
        rows[i, :n] = np.arange(s, s + n)
    return PaddedLists(feats, labels, mask, rows, data.query_ids)


@dataclass(frozen=True, eq=False)
class Fold:
    """One cross-validation fold. ``index`` is 1-based in the rankstack (DESIGN) numbering."""

    index: int
    train: LetorData
    valid: LetorData
    test: LetorData
    train_parts: tuple[str, ...]
    valid_part: str
    test_part: str
    n_parts: int

    @property
    def name(self) -> str:
        return f"fold{self.index}"

    @property
    def letor_name(self) -> str:
        """The same fold's name in LETOR 4.0's readme (its Fold1 tests on S5)."""
        return f"Fold{self.index % self.n_parts + 1}"

    def describe(self) -> dict:
        return {"fold": self.index, "letor_fold": self.letor_name, "train": list(self.train_parts),
                "valid": self.valid_part, "test": self.test_part}


def make_folds(parts: Sequence[LetorData], names: Sequence[str] | None = None) -> list[Fold]:
    """Rotate ``n >= 3`` partitions into n folds: fold k tests on part k, validates on part k-1."""
    n = len(parts)
    if n < 3:
        raise InputError(f"cross-validation needs at least 3 partitions, got {n}",
                         fix="pass the five LETOR files S1..S5")
    names = list(names) if names is not None else [p.name for p in parts]
    if len(set(names)) != n:
        names = [f"{nm}#{i + 1}" for i, nm in enumerate(names)]
    width = max(p.n_features for p in parts)
    seen: dict[str, str] = {}
    for nm, p in zip(names, parts):
        for q in p.query_ids:
            if q in seen:
                raise InputError(f"query {q!r} appears in partitions {seen[q]} and {nm}",
                                 fix="the partitions must split the queries")
            seen[q] = nm
    parts = [_widen(p, width) for p in parts]
    folds = []
    for k in range(n):
        v = (k - 1) % n
        train_idx = [i for i in range(n) if i not in (k, v)]
        train = parts[train_idx[0]]
        for i in train_idx[1:]:
            train = train.concat(parts[i])
        train = LetorData(train.qids, train.docids, train.labels, train.features,
                          name="+".join(names[i] for i in train_idx))
        folds.append(Fold(k + 1, train, parts[v], parts[k], tuple(names[i] for i in train_idx),
                          names[v], names[k], n))
    return folds


def _widen(data: LetorData, width: int) -> LetorData:
    if data.n_features == width:
        return data
    pad = np.zeros((len(data), width - data.n_features), dtype=np.float32)
    return LetorData(data.qids, data.docids, data.labels, np.hstack([data.features, pad]), name=data.name)


def resolve_fold_files(paths: Sequence[str | Path], names: Sequence[str] = DEFAULT_PARTS) -> list[Path]:
    """``[folder]`` -> ``folder/S1.txt .. folder/S5.txt``; a list of files is kept as given."""
    paths = [Path(p) for p in paths]
    if len(paths) == 1 and paths[0].is_dir():
        folder = paths[0]
        files = []
        for nm in names:
            cands = [folder / nm, folder / f"{nm}.txt"]
            hit = next((c for c in cands if c.is_file()), None)
            if hit is None:
                raise InputError(f"partition {nm!r} not found (looked for {nm} and {nm}.txt)", path=folder,
                                 fix="pass the partition files explicitly: --folds S1.txt ... S5.txt")
            files.append(hit)
        return files
    for p in paths:
        if not p.is_file():
            raise InputError("LETOR partition file does not exist", path=p, fix="check the path")
    if len(paths) < 3:
        raise InputError(f"cross-validation needs at least 3 partition files, got {len(paths)}",
                         fix="pass the five files S1..S5 or their folder")
    return paths


def letor_folds(folder: str | Path | Sequence[str | Path],
                names: Sequence[str] = DEFAULT_PARTS, normalisation: str = "none") -> list[Fold]:
    """The standard LETOR folds from a folder of partitions ``S1..S5`` (or a list of files).

    Each partition is read once; ``normalisation`` is applied per query (it never mixes folds).
    """
    paths = resolve_fold_files([folder] if isinstance(folder, (str, Path)) else list(folder), names)
    parts = [normalise(read_letor(p), normalisation) for p in paths]
    return make_folds(parts, [p.stem for p in paths])
