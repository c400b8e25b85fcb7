"""LETOR / SVMlight ranking files: ``label qid:Q 1:v 2:v ... # comment``.

Feature ids are 1-based and must increase strictly along a line (SVMlight's rule); absent ids are
0 (sparse lines). A ``docid = X`` in the comment (LETOR 4.0 writes one) becomes the document id, else
ids are ``<qid>-<row within query>``. Rows of one query must be contiguous, as in every LETOR file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rankstack.data.textfile import read_lines
from rankstack.errors import InputError
from rankstack.storage import atomic_write_text
from rankstack.types import Qrels

__all__ = ["LetorData", "read_letor", "write_letor"]

_DOCID = re.compile(r"docid\s*=\s*(\S+)")

# Bounds that separate a corrupt line from data: public LETOR sets have at most ~700 features
# (Yahoo! LTR), grades are 0-4. A larger id would allocate a [rows, id] matrix; a larger label
# would overflow; a feature beyond float32 would silently become inf.
MAX_FEATURE_ID = 100_000
MAX_LABEL = 2**31 - 1
_F32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True, eq=False)
class LetorData:
    """Query-grouped feature rows. ``features`` is float32 [rows, n_features]."""

    qids: np.ndarray
    docids: np.ndarray
    labels: np.ndarray
    features: np.ndarray
    name: str = "letor"

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])

    def group_offsets(self) -> np.ndarray:
        """Start offsets of each query's rows plus the end: rows of query i are [o[i], o[i+1])."""
        if len(self.qids) == 0:
            return np.array([0])
        starts = np.flatnonzero(np.r_[True, self.qids[1:] != self.qids[:-1]])
        return np.r_[starts, len(self.qids)]

    def group_sizes(self) -> np.ndarray:
        return np.diff(self.group_offsets())

    @property
    def query_ids(self) -> list[str]:
        return [str(self.qids[s]) for s in self.group_offsets()[:-1]]

    def qrels(self) -> Qrels:
        return Qrels(self.qids, self.docids, self.labels, name=self.name)

    def concat(self, other: LetorData, name: str | None = None) -> LetorData:
        if other.n_features != self.n_features:  # never pad silently: the columns may mean other features
            raise InputError(f"cannot join {self.name} ({self.n_features} features) and {other.name} "
                             f"({other.n_features} features)",
                             fix="read both with the same n_features if the missing ones are zeros")
        a, b = self.features, other.features
        overlap = set(self.query_ids) & set(other.query_ids)
        if overlap:
            raise InputError(f"query {sorted(overlap)[0]!r} appears in both {self.name} and {other.name}")
        return LetorData(np.r_[self.qids, other.qids], np.r_[self.docids, other.docids],
                         np.r_[self.labels, other.labels], np.vstack([a, b]), name or f"{self.name}+{other.name}")

    def __len__(self) -> int:
        return len(self.qids)


def read_letor(path: str | Path, n_features: int | None = None) -> LetorData:
    """Read an SVMlight ranking file; ``n_features`` fixes the width (else the largest id seen)."""
    path = Path(path)
    labels, qids, docids, rows = [], [], [], []
    max_fid = 0
    finished: set[str] = set()
    current = None
    per_query = 0
    for number, line in read_lines(path, "LETOR"):
        body, _, comment = line.partition("#")
        tokens = body.split()
        if len(tokens) < 2:
            raise InputError(f"expected 'label qid:Q f:v ...', found {line[:80]!r}", path=path, line=number)
        try:
            label = float(tokens[0])
        except ValueError:
            raise InputError(f"label {tokens[0]!r} is not a number", path=path, line=number) from None
        if not np.isfinite(label) or abs(label) > MAX_LABEL:
            raise InputError(f"label {tokens[0]!r} is not a finite integer grade of at most {MAX_LABEL}",
                             path=path, line=number, fix="labels are relevance grades such as 0, 1, 2")
        if label != int(label):
            raise InputError(f"label {tokens[0]!r} is not an integer grade", path=path, line=number)
        if not tokens[1].startswith("qid:") or len(tokens[1]) == 4:
            raise InputError(f"second field must be 'qid:<id>', found {tokens[1]!r}", path=path, line=number)
        qid = tokens[1][4:]
        if qid != current:
            if qid in finished:
                raise InputError(f"rows of query {qid!r} are not contiguous", path=path, line=number,
                                 fix="sort the file by query")
            if current is not None:
                finished.add(current)
            current, per_query = qid, 0
        feats: dict[int, float] = {}
        last = 0
        for tok in tokens[2:]:
            fid_text, sep, value_text = tok.partition(":")
            try:
                fid = int(fid_text)
                value = float(value_text)
            except ValueError:
                raise InputError(f"feature {tok!r} is not 'id:value'", path=path, line=number) from None
            if not sep or not np.isfinite(value):
                raise InputError(f"feature {tok!r} is not 'id:finite-value'", path=path, line=number)
            if abs(value) > _F32_MAX:
                raise InputError(f"feature {tok!r} is beyond the float32 range (|value| <= {_F32_MAX:.3g})",
                                 path=path, line=number, fix="scale the feature down")
            if fid < 1:
                raise InputError(f"feature id {fid} must be 1 or more", path=path, line=number)
            if fid > MAX_FEATURE_ID:
                raise InputError(f"feature id {fid} is larger than {MAX_FEATURE_ID}", path=path, line=number,
                                 fix="feature ids number the columns from 1; if the data really has "
                                     "this many, raise rankstack.data.letor.MAX_FEATURE_ID")
            if fid == last:
                raise InputError(f"feature id {fid} is repeated", path=path, line=number)
            if fid < last:
                raise InputError(f"feature ids out of order ({fid} after {last})", path=path, line=number,
                                 fix="feature ids must increase along a line")
            last = fid
            feats[fid] = value
        if n_features is not None and last > n_features:
            raise InputError(f"feature id {last} exceeds the expected {n_features} features", path=path,
                             line=number)
        max_fid = max(max_fid, last)
        m = _DOCID.search(comment)
        docids.append(m.group(1) if m else f"{qid}-{per_query}")
        per_query += 1
        labels.append(int(label))
        qids.append(qid)
        rows.append(feats)
    width = n_features or max_fid
    x = np.zeros((len(rows), width), dtype=np.float32)
    for i, feats in enumerate(rows):
        for fid, v in feats.items():
            x[i, fid - 1] = v
    docid_arr = np.array(docids)
    qid_arr = np.array(qids)
    pairs = np.char.add(np.char.add(qid_arr, "\x1f"), docid_arr)
    if len(np.unique(pairs)) != len(pairs):
        # LETOR files may list a document twice for a query; keep ids unique by suffixing the row.
        docid_arr = np.array([f"{d}#{i}" for i, d in enumerate(docids)])
    return LetorData(qid_arr, docid_arr, np.array(labels, dtype=np.int64), x, name=path.stem)


def write_letor(data: LetorData, path: str | Path) -> None:
    lines = []
    for q, d, y, row in zip(data.qids.tolist(), data.docids.tolist(), data.labels.tolist(), data.features):
        feats = " ".join(f"{i + 1}:{v:.6g}" for i, v in enumerate(row.tolist()))
        lines.append(f"{y} qid:{q} {feats} #docid = {d}\n")
    atomic_write_text(path, "".join(lines), kind="letor")
