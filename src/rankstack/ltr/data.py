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

from rankstack import normalize as rs_normalize
from rankstack.data.letor import LetorData, read_letor
from rankstack.errors import InputError
from rankstack.types import Run

__all__ = ["NORMALISATIONS", "normalise", "PaddedLists", "pad_lists", "Fold", "make_folds", "check_widths",
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
    becomes 0 under both (the rule of :mod:`rankstack.normalize`, and what LETOR's files hold).
    """
    _check_method(method)
    x = np.asarray(features, dtype=np.float32)
    if method == "none" or len(x) == 0:
        return x.copy()
    return rs_normalize.normalise(x, offsets, method).astype(np.float32)


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


def check_widths(parts: Sequence[LetorData], names: Sequence[str], n_features: int | None = None) -> int:
    """The common feature count of ``parts``; different counts raise unless ``n_features`` is given.

    A LETOR reader sees a part's width as its largest feature id. Two readings of a narrower part are
    possible: its trailing features are zeros that a sparse SVMlight writer omitted, or it comes from
    another feature set (46 MQ2008 features vs 45 or 48 of another collection). The file cannot tell
    the two apart, and guessing wrong trains on misaligned columns, so rankstack refuses to guess:
    different widths are an error naming every part and its count. When the trailing features really
    are omitted zeros, say so by declaring the width (``n_features=48``): narrower parts are then
    zero-padded to it, and a part using a higher feature id is still refused.
    """
    widths = {nm: p.n_features for nm, p in zip(names, parts)}
    if n_features is not None:
        if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
            raise InputError(f"n_features must be a positive integer, got {n_features!r}")
        wider = {nm: w for nm, w in widths.items() if w > n_features}
        if wider:
            raise InputError(f"partitions use more than the declared {n_features} features: "
                             + ", ".join(f"{nm} has {w}" for nm, w in wider.items()),
                             fix="declare the true feature count, or check the files")
        return n_features
    if len(set(widths.values())) > 1:
        counts = ", ".join(f"{nm}: {w}" for nm, w in widths.items())
        raise InputError(f"LETOR partitions have different feature counts ({counts})",
                         fix="use partitions of one feature set; if a narrower file only omits trailing zero "
                             f"features (sparse SVMlight), declare the width: n_features={max(widths.values())} "
                             f"(ltr cv: --n-features {max(widths.values())})")
    width = next(iter(widths.values()), 0)
    if width == 0:
        raise InputError("LETOR partitions hold no features", fix="check the files: lines need 'id:value' pairs")
    return width


def make_folds(parts: Sequence[LetorData], names: Sequence[str] | None = None,
               n_features: int | None = None) -> list[Fold]:
    """Rotate ``n >= 3`` partitions into n folds: fold k tests on part k, validates on part k-1.

    Every part must have the same feature count (see :func:`check_widths`; ``n_features`` declares
    the width when narrower parts only omit trailing zero features).
    """
    n = len(parts)
    if n < 3:
        raise InputError(f"cross-validation needs at least 3 partitions, got {n}",
                         fix="pass the five LETOR files S1..S5")
    names = list(names) if names is not None else [p.name for p in parts]
    if len(set(names)) != n:
        names = [f"{nm}#{i + 1}" for i, nm in enumerate(names)]
    width = check_widths(parts, names, n_features)
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
        if p.is_dir():
            raise InputError("expected a LETOR partition file, got a folder", path=p,
                             fix="pass one folder holding S1..S5, or the partition files themselves")
        if not p.is_file():
            raise InputError("LETOR partition file does not exist", path=p, fix="check the path")
    if len(paths) < 3:
        raise InputError(f"cross-validation needs at least 3 partition files, got {len(paths)}",
                         fix="pass the five files S1..S5 or their folder")
    return paths


def letor_folds(folder: str | Path | Sequence[str | Path],
                names: Sequence[str] = DEFAULT_PARTS, normalisation: str = "none",
                n_features: int | None = None) -> list[Fold]:
    """The standard LETOR folds from a folder of partitions ``S1..S5`` (or a list of files).

    Each partition is read once; ``normalisation`` is applied per query (it never mixes folds).
    Partitions with different feature counts are refused, naming the files and counts, unless
    ``n_features`` declares the width (see :func:`check_widths`).
    """
    paths = resolve_fold_files([folder] if isinstance(folder, (str, Path)) else list(folder), names)
    raw = [read_letor(p, n_features) for p in paths]  # a declared width is checked line by line
    check_widths(raw, [str(p) for p in paths], n_features)
    parts = [normalise(r, normalisation) for r in raw]
    return make_folds(parts, [p.stem for p in paths], n_features)
