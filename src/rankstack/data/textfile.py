"""Strict line reading shared by every reader: one place decides what a well-formed text file is.

Why strict: a BOM, CRLF endings or a stray Latin-1 byte silently change ids (``"doc1\\r"`` never
matches ``"doc1"``), which shows up much later as a wrong score. We refuse them with the file, the
line and the fix instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from rankstack.errors import InputError

__all__ = ["read_lines", "check_file"]


def check_file(path: str | Path, what: str) -> Path:
    """Return ``path`` as a Path if it is an existing regular file, else raise InputError."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} file does not exist", path=p, fix="check the path")
    if p.is_dir():
        raise InputError(f"{what} path is a folder, expected a file", path=p)
    return p


def read_lines(path: str | Path, what: str, allow_empty: bool = False) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` (1-based, newline stripped), skipping blank lines.

    Raises InputError on a missing file, invalid UTF-8, a byte-order mark, CRLF endings or (unless
    ``allow_empty``) a file with no non-blank line.
    """
    p = check_file(path, what)
    seen = False
    with p.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raise InputError(f"{what} file starts with a UTF-8 byte-order mark", path=p, line=1,
                                 fix="save it as UTF-8 without BOM (e.g. sed -i '1s/^\\xEF\\xBB\\xBF//' FILE)")
            if raw.endswith(b"\r\n") or raw.endswith(b"\r"):
                raise InputError(f"{what} file has Windows (CRLF) line endings", path=p, line=number,
                                 fix="convert it to LF endings (e.g. dos2unix FILE)")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"{what} file is not valid UTF-8 (byte {exc.start} of the line)",
                                 path=p, line=number, fix="re-encode the file as UTF-8 (e.g. iconv -t UTF-8)") from None
            line = line.rstrip("\n")
            if not line.strip():
                continue
            seen = True
            yield number, line
    if not seen and not allow_empty:
        raise InputError(f"{what} file is empty", path=p, fix=f"give a non-empty {what} file")
