"""Atomic single-file writes: a temporary sibling, fsync, one rename; the umask applies."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable

from rankstack.storage.paths import PathLike, _fsync_dir, check_output_file


# atomic files ----------------------------------------------------------------------------------------
def atomic_write_bytes(path: PathLike, data: bytes, inputs: Iterable[PathLike] = ()) -> None:
    """Write ``data`` to a temporary sibling, fsync it and rename it over ``path``."""
    path = check_output_file(path, inputs)
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


def atomic_write_text(path: PathLike, text: str, inputs: Iterable[PathLike] = ()) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), inputs)
