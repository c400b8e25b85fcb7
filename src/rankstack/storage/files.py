"""Atomic single-file writes: a temporary sibling, fsync, one rename; the umask applies.

A file output may only replace a file of its own kind: ``kind`` names a format (``trec-run``,
``qrels``, ``json``, ``jsonl``, ``letor``, ``per-query-csv``) whose first line an existing file must
look like, so ``--out notes.txt`` never destroys someone's notes. HTML reports, plots and tables are
written into output folders whose own checks protect them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path

from rankstack.errors import InputError
from rankstack.storage.paths import PathLike, _fsync_dir, check_output_file


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _trec_run(line: str) -> bool:
    f = line.split()
    return len(f) == 6 and f[3].lstrip("-").isdigit() and _number(f[4])


def _qrels(line: str) -> bool:
    f = line.split()
    return len(f) == 4 and _number(f[3])


def _letor(line: str) -> bool:
    f = line.split()
    return len(f) >= 2 and _number(f[0]) and f[1].startswith("qid:")


SNIFFERS: dict[str, Callable[[str], bool]] = {
    "trec-run": _trec_run,
    "qrels": _qrels,
    "json": lambda line: line.lstrip().startswith(("{", "[")),
    "jsonl": lambda line: line.lstrip().startswith("{"),
    "letor": _letor,
    "per-query-csv": lambda line: line.startswith("run,qid,measure,value"),
}


def _check_same_kind(path: Path, kind: str) -> None:
    """Refuse to replace an existing non-empty file whose first line is not of ``kind``."""
    try:
        if not path.is_file() or path.stat().st_size == 0:
            return
        with open(path, "rb") as fh:
            head = fh.read(64 * 1024)
    except OSError:
        return  # the write itself will report it
    first = next((ln for ln in head.decode("utf-8", errors="replace").splitlines() if ln.strip()), "")
    if first and not SNIFFERS[kind](first):
        raise InputError(f"output file exists and does not look like a {kind} file; refusing to replace it",
                         path=path, fix="choose a new file name, or delete that file yourself")


# atomic files ----------------------------------------------------------------------------------------
def atomic_write_bytes(path: PathLike, data: bytes, inputs: Iterable[PathLike] = (),
                       kind: str | None = None) -> None:
    """Write ``data`` to a temporary sibling, fsync it and rename it over ``path``.

    With ``kind``, an existing file at ``path`` is replaced only if it looks like that format.
    """
    path = check_output_file(path, inputs)
    if kind is not None:
        _check_same_kind(path, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: PathLike, text: str, inputs: Iterable[PathLike] = (), kind: str | None = None) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), inputs, kind)
