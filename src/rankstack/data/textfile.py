"""Strict line reading shared by every reader: one place decides what a well-formed text file is.

Why strict: a BOM, CRLF endings or a stray Latin-1 byte silently change ids (``"doc1\\r"`` never
matches ``"doc1"``), which shows up much later as a wrong score. We refuse them with the file, the
line and the fix instead. Lines are read with a length limit, so a huge file with no newline (a
binary, a one-line dump) is refused with a clear message instead of exhausting memory; compressed and
binary files are recognised by their first bytes.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

from rankstack.errors import InputError

__all__ = ["read_lines", "check_file", "sniff_binary", "MAX_LINE_BYTES", "MAX_DOCUMENT_LINE_BYTES"]

# Longest accepted line, in bytes. TREC runs, qrels, LETOR rows and click sessions are short; a BEIR
# corpus line holds a whole document. Module constants so a caller (or a test) can change them.
MAX_LINE_BYTES = 1 << 20  # 1 MiB
MAX_DOCUMENT_LINE_BYTES = 64 << 20  # 64 MiB

# First bytes of formats people hand us by mistake, and what to do about each.
_MAGIC = (
    (b"\x1f\x8b", "gzip-compressed", "decompress it first (gunzip FILE, or zcat FILE > NEW)"),
    (b"BZh", "bzip2-compressed", "decompress it first (bunzip2 FILE)"),
    (b"\xfd7zXZ\x00", "xz-compressed", "decompress it first (unxz FILE)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed", "decompress it first (unzstd FILE)"),
    (b"PK\x03\x04", "a zip archive", "extract it first (unzip FILE)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-zip archive", "extract it first (7z x FILE)"),
    (b"\xff\xfe", "UTF-16 encoded", "re-encode it as UTF-8 (iconv -f UTF-16 -t UTF-8 FILE)"),
    (b"\xfe\xff", "UTF-16 encoded", "re-encode it as UTF-8 (iconv -f UTF-16 -t UTF-8 FILE)"),
    (b"PAR1", "a Parquet file", "export it as text first"),
    (b"\x93NUMPY", "a NumPy array file", "export it as text first"),
    (b"SQLite format 3\x00", "an SQLite database", "export it as text first"),
)


def _os_error(exc: OSError, p: Path, what: str) -> InputError:
    return InputError(f"cannot read {what} file: {exc.strerror or exc}", path=p,
                      fix="check the path and its permissions (a regular file is expected)")


def check_file(path: str | Path, what: str) -> Path:
    """Return ``path`` as a Path if it is an existing readable file (or pipe), else raise InputError."""
    p = Path(path)
    try:
        info = p.stat()
    except FileNotFoundError:
        raise InputError(f"{what} file does not exist", path=p, fix="check the path") from None
    except NotADirectoryError:
        raise InputError(f"{what} file does not exist: a part of its path is a file, not a folder",
                         path=p, fix="check the path") from None
    except OSError as exc:
        raise _os_error(exc, p, what) from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{what} path is a folder, expected a file", path=p,
                         fix=f"give the path of the {what} file itself")
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISFIFO(info.st_mode) or stat.S_ISCHR(info.st_mode)):
        raise InputError(f"{what} path is not a regular file", path=p, fix=f"give a {what} text file")
    return p


def sniff_binary(head: bytes) -> tuple[str, str] | None:
    """``(what it is, fix)`` when the first bytes of a file show it is not a text file."""
    for magic, kind, fix in _MAGIC:
        if head.startswith(magic):
            return kind, fix
    if b"\x00" in head:
        return "binary (it contains NUL bytes)", "give a UTF-8 text file"
    return None


def read_lines(path: str | Path, what: str, allow_empty: bool = False,
               max_line: int | None = None) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` (1-based, newline stripped), skipping blank lines.

    Raises InputError on a missing or unreadable file, a compressed or binary file, a line longer
    than ``max_line`` bytes (default ``MAX_LINE_BYTES``), invalid UTF-8, a byte-order mark, CR
    characters (CRLF endings) or (unless ``allow_empty``) a file with no non-blank line.
    """
    p = check_file(path, what)
    limit = MAX_LINE_BYTES if max_line is None else int(max_line)
    seen = False
    try:
        fh = p.open("rb")
    except OSError as exc:
        raise _os_error(exc, p, what) from None
    with fh:
        number = 0
        while True:
            try:
                raw = fh.readline(limit + 1)
            except OSError as exc:
                raise _os_error(exc, p, what) from None
            if not raw:
                break
            number += 1
            if number == 1:
                _check_start(raw, p, what)
            if len(raw) > limit and not raw.endswith(b"\n"):
                kind = sniff_binary(raw[:4096])
                if kind is not None:
                    raise InputError(f"{what} file is {kind[0]}", path=p, line=number, fix=kind[1])
                raise InputError(f"{what} file has a line longer than {_size(limit)} (no newline within "
                                 f"the first {_size(limit)})", path=p, line=number,
                                 fix="check this is the right file; if the lines really are this long, "
                                     "raise rankstack.data.textfile.MAX_LINE_BYTES")
            if b"\x00" in raw:
                raise InputError(f"{what} file is binary (it contains NUL bytes)", path=p, line=number,
                                 fix="give a UTF-8 text file")
            if b"\r" in raw:
                if raw.endswith(b"\r\n"):
                    raise InputError(f"{what} file has Windows (CRLF) line endings", path=p, line=number,
                                     fix="convert it to LF endings (e.g. dos2unix FILE)")
                raise InputError(f"{what} file has a carriage return (\\r) inside a line", path=p,
                                 line=number, fix="remove CR characters (e.g. tr -d '\\r' < FILE > NEW)")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"{what} file is not valid UTF-8 (byte {exc.start} of the line)",
                                 path=p, line=number,
                                 fix="re-encode the file as UTF-8 (e.g. iconv -t UTF-8)") from None
            line = line.rstrip("\n")
            if not line.strip():
                continue
            seen = True
            yield number, line
    if not seen and not allow_empty:
        raise InputError(f"{what} file is empty", path=p, fix=f"give a non-empty {what} file")


def _check_start(raw: bytes, p: Path, what: str) -> None:
    kind = sniff_binary(raw[:4096])
    if kind is not None:
        raise InputError(f"{what} file is {kind[0]}", path=p, line=1, fix=kind[1])
    if raw.startswith(b"\xef\xbb\xbf"):
        raise InputError(f"{what} file starts with a UTF-8 byte-order mark", path=p, line=1,
                         fix="save it as UTF-8 without BOM (e.g. sed -i '1s/^\\xEF\\xBB\\xBF//' FILE)")


def _size(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"

