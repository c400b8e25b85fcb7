"""Synthetic query records and their JSONL file: the hand-off between generation and adaptation.

Why a file format of its own: generation is slow (an LLM writes ~1 query/s on this CPU), so it must
survive a kill and continue without duplicates, and whoever trains on the queries must know exactly
where each came from (generator, prompt, seed). One JSON object per line is appendable in place; the
first line is a header naming the format, its version, the generator and the generation config::

    {"format": "rankstack.synthetic-queries", "version": 1, "generator": "llm-instruct", "config": {...}}
    {"qid": "...", "text": "...", "doc_id": "...", "generator": "...", "prompt_id": "...", "seed": 0,
     "score": -1.23, "extra": {...}}

A crash while appending can leave a torn last line (no newline, half a JSON object): readers drop it
with a warning (never silently), :func:`repair_torn_tail` cuts it off before an append. Any other bad
line is an :class:`~rankstack.errors.InputError` naming ``file:line`` and the fix. Hand-written because
no library offers a resumable, provenance-carrying JSONL with these checks.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rankstack.errors import InputError
from rankstack.storage import atomic_write_text, check_output_file

__all__ = ["SyntheticQuery", "FORMAT", "VERSION", "write_synthetic_queries", "read_synthetic_queries",
           "read_synthetic_header", "repair_torn_tail"]

log = logging.getLogger(__name__)

FORMAT = "rankstack.synthetic-queries"
VERSION = 1
_FIX_CORRUPT = ("delete that line (or restore the file from a backup); a resumed "
                "`rankstack generate-queries --resume` regenerates what is missing")


@dataclass(frozen=True)
class SyntheticQuery:
    """One generated (query, source document) pair with its provenance.

    ``score`` is the generated query's mean token log-probability (higher = the model was surer), or
    None for generators without a language model. ``extra`` holds generator-specific provenance, e.g.
    the ICT document text with the query sentence removed (``{"doc_text": ..., "span": [start, end]}``),
    the prompt hash or the selection cluster. ``key`` identifies the work item for resuming.
    """

    qid: str
    text: str
    doc_id: str
    generator: str
    prompt_id: str
    seed: int
    score: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str, int]:
        """(doc_id, generator, prompt_id, seed): one work item; a resumed run never redoes one."""
        return (self.doc_id, self.generator, self.prompt_id, self.seed)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, allow_nan=False, sort_keys=False)


_FIELDS: dict[str, tuple[type, ...]] = {
    "qid": (str,), "text": (str,), "doc_id": (str,), "generator": (str,), "prompt_id": (str,),
    "seed": (int,), "score": (int, float, type(None)), "extra": (dict,),
}


def _record(obj: Any, path: Path, line: int) -> SyntheticQuery:
    if not isinstance(obj, dict):
        raise InputError(f"expected a JSON object, got {type(obj).__name__}", path=path, line=line, fix=_FIX_CORRUPT)
    missing = [k for k in _FIELDS if k not in obj and k not in ("score", "extra")]
    if missing:
        raise InputError(f"synthetic query lacks field(s) {', '.join(missing)}", path=path, line=line,
                         fix=_FIX_CORRUPT)
    unknown = sorted(set(obj) - set(_FIELDS))
    if unknown:
        raise InputError(f"unknown field(s) {', '.join(unknown)} in a synthetic query (accepted: "
                         f"{', '.join(_FIELDS)})", path=path, line=line, fix=_FIX_CORRUPT)
    for name, types in _FIELDS.items():
        value = obj.get(name)
        if name in ("score", "extra") and name not in obj:
            continue
        if not isinstance(value, types) or (name == "seed" and isinstance(value, bool)):
            raise InputError(f"field {name!r} is {type(value).__name__} {value!r:.40}, expected "
                             f"{' or '.join(t.__name__ for t in types)}", path=path, line=line, fix=_FIX_CORRUPT)
    score = obj.get("score")
    if score is not None and not math.isfinite(float(score)):
        raise InputError(f"score {score!r} is not finite", path=path, line=line, fix=_FIX_CORRUPT)
    if not obj["qid"] or not obj["doc_id"] or not obj["text"].strip():
        raise InputError("synthetic query has an empty qid, doc_id or text", path=path, line=line,
                         fix=_FIX_CORRUPT)
    return SyntheticQuery(qid=obj["qid"], text=obj["text"], doc_id=obj["doc_id"], generator=obj["generator"],
                          prompt_id=obj["prompt_id"], seed=obj["seed"],
                          score=None if score is None else float(score), extra=dict(obj.get("extra") or {}))


def _check_header(obj: Any, path: Path) -> dict[str, Any]:
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise InputError(f"first line is not a {FORMAT} header", path=path, line=1,
                         fix="give a file written by `rankstack generate-queries` (its first line is "
                             f'{{"format": "{FORMAT}", "version": {VERSION}, ...}})')
    if obj.get("version") != VERSION:
        raise InputError(f"synthetic-queries format version {obj.get('version')!r} is not supported "
                         f"(this rankstack reads version {VERSION})", path=path, line=1,
                         fix="regenerate the file with this rankstack version")
    if not isinstance(obj.get("generator"), str) or not isinstance(obj.get("config", {}), dict):
        raise InputError("header needs a string 'generator' and an object 'config'", path=path, line=1,
                         fix="regenerate the file with `rankstack generate-queries`")
    return obj


def _split(path: Path) -> tuple[list[tuple[int, str]], str | None]:
    """Complete lines (number, text) and the torn tail (text without a newline) if any."""
    from rankstack.data.textfile import check_file, sniff_binary

    check_file(path, "synthetic queries")
    data = path.read_bytes()
    bad = sniff_binary(data[:64])
    if bad is not None:
        raise InputError(f"synthetic queries file is {bad[0]}", path=path, fix=bad[1])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError("not valid UTF-8", path=path, line=line, fix=_FIX_CORRUPT) from None
    parts = text.split("\n")
    tail = parts.pop()  # "" when the file ends with a newline
    lines = [(i + 1, ln) for i, ln in enumerate(parts)]
    return lines, (tail if tail.strip() else None)


def _is_torn(tail: str) -> bool:
    try:
        json.loads(tail)
    except ValueError:
        return True
    return False


def read_synthetic_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The header (format, version, generator, config) of a synthetic queries file."""
    path = Path(path)
    lines, tail = _split(path)
    first = lines[0][1] if lines else tail
    if first is None or not first.strip():
        raise InputError("synthetic queries file is empty (no header line)", path=path, line=1,
                         fix="generate queries into it with `rankstack generate-queries`")
    try:
        obj = json.loads(first)
    except ValueError:
        raise InputError("header line is not valid JSON", path=path, line=1, fix=_FIX_CORRUPT) from None
    return _check_header(obj, path)


def read_synthetic_queries(path: str | os.PathLike[str]) -> list[SyntheticQuery]:
    """All records of a synthetic queries file, in file order.

    A torn last line (a crash while appending) is dropped with a warning; any other malformed line,
    a duplicate qid or a bad header raises InputError naming ``file:line``.
    """
    path = Path(path)
    header_checked = False
    lines, tail = _split(path)
    if tail is not None:
        if _is_torn(tail):
            log.warning("%s:%d: dropping a torn last line (an interrupted write): %.60r", path, len(lines) + 1, tail)
        else:
            lines.append((len(lines) + 1, tail))
    out: list[SyntheticQuery] = []
    seen: dict[str, int] = {}
    for number, text in lines:
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise InputError(f"not valid JSON ({exc.msg} at column {exc.colno})", path=path, line=number,
                             fix=_FIX_CORRUPT) from None
        if not header_checked:
            _check_header(obj, path)
            header_checked = True
            continue
        rec = _record(obj, path, number)
        if rec.qid in seen:
            raise InputError(f"duplicate qid {rec.qid!r} (first on line {seen[rec.qid]})", path=path, line=number,
                             fix=_FIX_CORRUPT)
        seen[rec.qid] = number
        out.append(rec)
    if not header_checked:
        raise InputError("synthetic queries file is empty (no header line)", path=path, line=1,
                         fix="generate queries into it with `rankstack generate-queries`")
    return out


def repair_torn_tail(path: str | os.PathLike[str]) -> bool:
    """Cut off a torn last line (no newline, not JSON) left by a crash; True if one was removed.

    Logs a warning naming the line, so a resume never drops data silently. A complete last line that
    merely lacks its newline gets one instead.
    """
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return False
    lines, tail = _split(path)
    if tail is None:
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):  # whitespace-only tail
            with open(path, "r+b") as fh:
                fh.truncate(len(data.rstrip(b" \t\r")))
                fh.seek(0, os.SEEK_END)
                fh.write(b"\n")
        return False
    size = path.stat().st_size
    torn_bytes = len(tail.encode("utf-8"))
    with open(path, "r+b") as fh:
        if _is_torn(tail):
            log.warning("%s:%d: dropping a torn last line (an interrupted write): %.60r", path, len(lines) + 1, tail)
            fh.truncate(size - torn_bytes)
            fh.flush()
            os.fsync(fh.fileno())
            return True
        fh.seek(0, os.SEEK_END)
        fh.write(b"\n")
        fh.flush()
        os.fsync(fh.fileno())
    return False


def _header_line(generator: str, config: Mapping[str, Any]) -> str:
    return json.dumps({"format": FORMAT, "version": VERSION, "generator": generator, "config": dict(config)},
                      ensure_ascii=False, allow_nan=False, default=str)


def write_synthetic_queries(path: str | os.PathLike[str], records: Iterable[SyntheticQuery], append: bool = True,
                            *, generator: str | None = None, config: Mapping[str, Any] | None = None,
                            inputs: Iterable[str | os.PathLike[str]] = ()) -> int:
    """Write ``records`` to ``path``; returns how many were written.

    ``append=True`` adds them to the end (writing the header first when the file is new or empty,
    cutting off a torn tail first, refusing a file of another format or generator) and fsyncs, so a
    crash loses at most the line being written. ``append=False`` replaces the file atomically (only a
    JSONL file may be replaced). ``generator`` defaults to the first record's generator.
    """
    path = Path(path)
    records = list(records)
    gen = generator if generator is not None else (records[0].generator if records else "unknown")
    body = "".join(r.to_json() + "\n" for r in records)
    if not append or not path.exists() or path.stat().st_size == 0:
        atomic_write_text(path, _header_line(gen, config or {}) + "\n" + body, inputs=inputs, kind="jsonl")
        return len(records)
    check_output_file(path, inputs)
    header = read_synthetic_header(path)
    if header["generator"] != gen:
        raise InputError(f"file holds queries of generator {header['generator']!r}, refusing to append "
                         f"{gen!r} ones", path=path, fix="write to a new --out file")
    repair_torn_tail(path)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(body)
        fh.flush()
        os.fsync(fh.fileno())
    return len(records)
