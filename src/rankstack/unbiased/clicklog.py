"""Click logs: sessions of (query, shown documents in order, 0/1 clicks, optional propensities).

File format (JSON Lines, UTF-8, LF endings, one session per line, blank lines ignored)::

    {"qid": "10032", "docids": ["GX008-86-4444840", "GX037-06-11625428"], "clicks": [0, 1]}
    {"qid": "10032", "docids": ["GX008-86-4444840", "GX037-06-11625428"], "clicks": [1, 0],
     "propensities": [0.68, 0.61]}

* ``qid``: string query id (numbers are refused: ids are strings everywhere in rankstack).
* ``docids``: the shown documents, rank 1 first, non-empty, no repeats, all strings.
* ``clicks``: one 0 or 1 per shown document (``true``/``false`` are refused, 0/1 only).
* ``propensities`` (optional): the probability that the user examined each rank, each in [0, 1],
  as the logging system or simulator knew it (0 only where no click can happen, e.g. below the
  first click of a cascade user; a click at propensity 0 is refused); every line has it or none.
* Any other field is an error (a typo such as ``"click"`` must not be silently ignored).

Why JSONL and not a table: sessions have different lengths, and each line is self-contained so a
bad line is reported with its number. Writers are atomic (temporary file + rename), so a crash never
leaves half a log. A simulator may add a sidecar ``<log>.meta.json`` describing how the log was made
(click model, its parameters, true propensities by rank); readers never need it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.data.beir import _has_surrogate, parse_json_line
from rankstack.data.textfile import read_lines
from rankstack.errors import InputError, did_you_mean
from rankstack.storage import atomic_write_text

__all__ = ["ClickLog", "read_clicklog", "write_clicklog", "FIELDS", "meta_path", "read_meta", "write_meta"]

FIELDS = ("qid", "docids", "clicks", "propensities")
_REQUIRED = ("qid", "docids", "clicks")
_FIX = ('each line is {"qid": "Q", "docids": ["D1", "D2"], "clicks": [0, 1]} '
        '(optional "propensities": [p1, p2])')


@dataclass(frozen=True, eq=False)
class ClickLog:
    """Sessions as padded columns: ``docids`` str [S, K] ('' = padding), ``clicks`` int8 [S, K],
    ``lengths`` int [S] (shown documents per session), ``propensities`` float [S, K] or None.

    Columnar so that 10^5-10^6 sessions aggregate with NumPy; padding beyond ``lengths`` is 0 / ''.
    """

    qids: np.ndarray
    docids: np.ndarray
    clicks: np.ndarray
    lengths: np.ndarray
    propensities: np.ndarray | None = None

    def __post_init__(self) -> None:
        s = len(self.qids)
        if self.docids.shape[0] != s or self.clicks.shape != self.docids.shape or len(self.lengths) != s:
            raise InputError(f"click log columns disagree: {s} qids, docids {self.docids.shape}, clicks "
                             f"{self.clicks.shape}, {len(self.lengths)} lengths")
        if self.propensities is not None and self.propensities.shape != self.clicks.shape:
            raise InputError(f"propensities shape {self.propensities.shape} differs from clicks "
                             f"{self.clicks.shape}")

    def __len__(self) -> int:
        return len(self.qids)

    @property
    def max_length(self) -> int:
        return int(self.docids.shape[1]) if self.docids.ndim == 2 else 0

    @property
    def mask(self) -> np.ndarray:
        """bool [S, K]: True where a document was shown."""
        return np.arange(self.max_length)[None, :] < self.lengths[:, None]

    def click_rate_by_rank(self) -> np.ndarray:
        """Clicks per session at each rank (over sessions long enough to show that rank)."""
        shown = self.mask.sum(0)
        return self.clicks.sum(0) / np.maximum(shown, 1)

    @classmethod
    def from_sessions(cls, sessions: Sequence[Mapping[str, Any]]) -> ClickLog:
        """Build from dicts with the file's fields (validated like a file, line = position + 1)."""
        rows = [_validate(dict(s), None, i + 1) for i, s in enumerate(sessions)]
        return _columns(rows)

    def sessions(self) -> list[dict[str, Any]]:
        """One dict per session, in the file format's field names."""
        out = []
        for i in range(len(self)):
            n = int(self.lengths[i])
            row: dict[str, Any] = {"qid": str(self.qids[i]), "docids": [str(d) for d in self.docids[i, :n]],
                                   "clicks": [int(c) for c in self.clicks[i, :n]]}
            if self.propensities is not None:
                row["propensities"] = [float(p) for p in self.propensities[i, :n]]
            out.append(row)
        return out

    def concat(self, other: ClickLog) -> ClickLog:
        if (self.propensities is None) != (other.propensities is None):
            raise InputError("cannot join a click log with propensities to one without")
        k = max(self.max_length, other.max_length)
        pad = lambda a, v: np.pad(a, ((0, 0), (0, k - a.shape[1])), constant_values=v)  # noqa: E731
        props = None
        if self.propensities is not None:
            props = np.vstack([pad(self.propensities, 0.0), pad(other.propensities, 0.0)])
        return ClickLog(np.r_[self.qids, other.qids],
                        np.vstack([pad(self.docids, ""), pad(other.docids, "")]),
                        np.vstack([pad(self.clicks, 0), pad(other.clicks, 0)]),
                        np.r_[self.lengths, other.lengths], props)


def _validate(obj: Any, path: Path | None, line: int) -> dict[str, Any]:
    def bad(problem: str, fix: str = _FIX) -> InputError:
        return InputError(problem, path=path, line=line, fix=fix)

    if not isinstance(obj, dict):
        raise bad(f"a session must be a JSON object, found {type(obj).__name__}")
    unknown = sorted(set(obj) - set(FIELDS))
    if unknown:
        hints = [u + did_you_mean(u, FIELDS) for u in unknown]
        raise bad(f"unknown field(s) {', '.join(hints)}", fix=f"the fields are {', '.join(FIELDS)}")
    missing = [f for f in _REQUIRED if f not in obj]
    if missing:
        raise bad(f"missing field(s) {', '.join(missing)}")
    qid, docids, clicks = obj["qid"], obj["docids"], obj["clicks"]
    if not isinstance(qid, str) or not qid:
        raise bad(f"qid must be a non-empty string, found {qid!r}", fix='quote the id: "qid": "123"')
    if not isinstance(docids, list) or not docids:
        raise bad(f"docids must be a non-empty list, found {docids!r}"[:200])
    if not all(isinstance(d, str) and d for d in docids):
        d = next(d for d in docids if not (isinstance(d, str) and d))
        raise bad(f"every docid must be a non-empty string, found {d!r}")
    if any(_has_surrogate(x) for x in (qid, *docids)):
        raise bad("an id holds an unpaired UTF-16 surrogate escape (\\ud800-\\udfff)",
                  fix="write ids as UTF-8 text")
    if len(set(docids)) != len(docids):
        d = next(d for d in docids if docids.count(d) > 1)
        raise bad(f"document {d!r} is shown twice in one session", fix="a session shows each document once")
    if not isinstance(clicks, list):
        raise bad(f"clicks must be a list of 0/1, found {clicks!r}"[:200])
    if len(clicks) != len(docids):
        raise bad(f"{len(docids)} docids but {len(clicks)} clicks", fix="give one click (0 or 1) per shown document")
    for c in clicks:
        if isinstance(c, bool) or c not in (0, 1):
            raise bad(f"clicks must be 0 or 1, found {c!r}", fix="write clicks as the integers 0 and 1")
    props = obj.get("propensities")
    if "propensities" in obj:
        if not isinstance(props, list) or len(props) != len(docids):
            n = len(props) if isinstance(props, list) else type(props).__name__
            raise bad(f"{len(docids)} docids but propensities {n}", fix="give one propensity per shown document")
        for p, c in zip(props, clicks):
            # range first: math.isfinite(10**400) would raise OverflowError; NaN fails the range too
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1 or not math.isfinite(p):
                raise bad(f"propensity {p!r} is not a number in [0, 1]",
                          fix="a propensity is an examination probability, between 0 and 1")
            if c == 1 and p == 0:
                raise bad("a clicked document has propensity 0 (it cannot have been examined)",
                          fix="a clicked rank needs a propensity greater than 0")
    return {"qid": qid, "docids": docids, "clicks": clicks, "propensities": props, "line": line}


def _columns(rows: list[dict[str, Any]], path: Path | None = None) -> ClickLog:
    with_p = [r["propensities"] is not None for r in rows]
    if any(with_p) and not all(with_p):
        first = next(r for r, w in zip(rows, with_p) if w != with_p[0])
        raise InputError("some sessions have propensities and others do not", path=path, line=first["line"],
                         fix="give propensities on every line or on none")
    s = len(rows)
    k = max((len(r["docids"]) for r in rows), default=0)
    lengths = np.array([len(r["docids"]) for r in rows], dtype=np.int64)
    width = max((len(d) for r in rows for d in r["docids"]), default=1)
    docids = np.full((s, k), "", dtype=f"<U{width}")
    clicks = np.zeros((s, k), dtype=np.int8)
    props = np.zeros((s, k), dtype=np.float64) if rows and with_p[0] else None
    for i, r in enumerate(rows):
        n = lengths[i]
        docids[i, :n] = r["docids"]
        clicks[i, :n] = r["clicks"]
        if props is not None:
            props[i, :n] = r["propensities"]
    qids = np.array([r["qid"] for r in rows]) if rows else np.array([], dtype="<U1")
    return ClickLog(qids, docids, clicks, lengths, props)


def read_clicklog(path: str | Path) -> ClickLog:
    """Read and validate a JSONL click log; any bad line raises InputError naming file and line."""
    path = Path(path)
    rows = []
    for number, line in read_lines(path, "click log"):
        rows.append(_validate(parse_json_line(line, path, number, fix=_FIX, problem="not valid JSON"), path, number))
    return _columns(rows, path)


def write_clicklog(log: ClickLog, path: str | Path) -> None:
    """Write ``log`` as JSONL atomically (temporary file + rename)."""
    lines = [json.dumps(s, separators=(",", ":")) for s in log.sessions()]
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""), kind="jsonl")


def meta_path(path: str | Path) -> Path:
    """The sidecar description of a simulated log: ``clicks.jsonl`` -> ``clicks.jsonl.meta.json``."""
    path = Path(path)
    return path.with_name(path.name + ".meta.json")


def write_meta(path: str | Path, meta: Mapping[str, Any]) -> None:
    atomic_write_text(meta_path(path), json.dumps(dict(meta), indent=2, sort_keys=True) + "\n", kind="json")


def read_meta(path: str | Path) -> dict[str, Any] | None:
    """The sidecar of ``path`` if present, else None."""
    m = meta_path(path)
    if not m.is_file():
        return None
    fix = "delete it or re-run 'rankstack clicks simulate'"
    try:
        return json.loads(m.read_text("utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read the click log description: {exc.strerror or exc}", path=m,
                         fix=fix) from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InputError(f"click log description is not valid JSON ({exc})", path=m, fix=fix) from None
