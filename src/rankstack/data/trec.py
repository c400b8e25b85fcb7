"""TREC run (6 columns) and qrels (4 columns) files.

Run line: ``qid Q0 docid rank score tag``; qrels line: ``qid iter docid relevance``. Columns are
split on any whitespace, as trec_eval does. Files are written in canonical order with 1-based ranks.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from rankstack.data.textfile import read_lines
from rankstack.errors import InputError
from rankstack.storage import atomic_write_text
from rankstack.types import Qrels, Run

__all__ = ["read_run", "write_run", "read_trec_qrels", "write_trec_qrels", "format_run"]


def read_run(path: str | Path, name: str | None = None) -> Run:
    """Read a 6-column TREC run; the run is named after the file stem unless ``name`` is given."""
    path = Path(path)
    qids, docids, scores = [], [], []
    seen: dict[tuple[str, str], int] = {}
    for number, line in read_lines(path, "run"):
        cols = line.split()
        if len(cols) != 6:
            raise InputError(f"expected 6 columns 'qid Q0 docid rank score tag', found {len(cols)}: "
                             f"{line[:80]!r}", path=path, line=number)
        qid, _, docid, rank, score_text, _ = cols
        try:
            int(rank)
        except ValueError:
            raise InputError(f"rank {rank!r} is not an integer", path=path, line=number) from None
        try:
            score = float(score_text)
        except ValueError:
            raise InputError(f"score {score_text!r} is not a number", path=path, line=number) from None
        if not math.isfinite(score):
            raise InputError(f"score {score_text!r} is not finite", path=path, line=number,
                             fix="give every document a finite score")
        key = (qid, docid)
        if key in seen:
            raise InputError(f"document {docid!r} appears twice for query {qid!r} (first on line "
                             f"{seen[key]})", path=path, line=number, fix="keep one line per (qid, docid)")
        seen[key] = number
        qids.append(qid)
        docids.append(docid)
        scores.append(score)
    return Run(np.array(qids), np.array(docids), np.array(scores, dtype=np.float64),
               name=name or path.stem)


def format_run(run: Run, tag: str | None = None) -> str:
    tag = (tag or run.name or "rankstack").replace(" ", "_")
    ranks = run.ranks()
    return "".join(f"{q} Q0 {d} {r} {s!r} {tag}\n"
                   for q, d, r, s in zip(run.qids.tolist(), run.docids.tolist(), ranks.tolist(),
                                         run.scores.tolist()))


def write_run(run: Run, path: str | Path, tag: str | None = None) -> None:
    """Write ``run`` atomically in canonical order, 1-based ranks, scores at full precision."""
    for q, d in ((run.qids, "query"), (run.docids, "document")):
        bad = [x for x in q[:1000].tolist() if not x or any(c.isspace() for c in x)]
        if bad:
            raise InputError(f"{d} id {bad[0]!r} is empty or contains white space; TREC files "
                             "cannot hold it", path=path)
    atomic_write_text(path, format_run(run, tag), kind="trec-run")


def read_trec_qrels(path: str | Path) -> Qrels:
    """Read a 4-column TREC qrels file ``qid iter docid relevance``."""
    path = Path(path)
    q, d, r = [], [], []
    seen: dict[tuple[str, str], int] = {}
    for number, line in read_lines(path, "qrels"):
        cols = line.split()
        if len(cols) != 4:
            raise InputError(f"expected 4 columns 'qid iter docid relevance', found {len(cols)}: "
                             f"{line[:80]!r}", path=path, line=number)
        rel = _parse_relevance(cols[3], path, number)
        key = (cols[0], cols[2])
        if key in seen:
            raise InputError(f"document {cols[2]!r} is judged twice for query {cols[0]!r} (first on "
                             f"line {seen[key]})", path=path, line=number)
        seen[key] = number
        q.append(cols[0])
        d.append(cols[2])
        r.append(rel)
    return Qrels(np.array(q), np.array(d), np.array(r, dtype=np.int64), name=path.stem)


# Relevance grades are small integers; anything beyond 32 bits is a corrupt file, not a grade (and
# would overflow the int64 columns on the way to the measures).
MAX_RELEVANCE = 2**31 - 1


def _parse_relevance(text: str, path: Path, number: int) -> int:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"relevance {text!r} is not an integer", path=path, line=number) from None
    if not math.isfinite(value):
        raise InputError(f"relevance {text!r} is not a finite integer", path=path, line=number,
                         fix="relevance grades are small integers such as 0, 1, 2")
    if abs(value) > MAX_RELEVANCE:
        raise InputError(f"relevance {text!r} is out of range (|relevance| <= {MAX_RELEVANCE})",
                         path=path, line=number, fix="relevance grades are small integers such as 0, 1, 2")
    if value != int(value):
        raise InputError(f"relevance {text!r} is not an integer", path=path, line=number)
    return int(value)


def write_trec_qrels(qrels: Qrels, path: str | Path) -> None:
    atomic_write_text(path, "".join(f"{q} 0 {d} {r}\n" for q, d, r in
                                    zip(qrels.qids.tolist(), qrels.docids.tolist(), qrels.relevance.tolist())),
                      kind="qrels")
