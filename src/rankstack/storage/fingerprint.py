"""Content fingerprints for cache keys: a hash of the bytes, never of a modification time."""

from __future__ import annotations

import hashlib
from pathlib import Path

from rankstack.errors import InputError
from rankstack.storage.manifest import sha256_file
from rankstack.storage.paths import PathLike, _real


# content fingerprints --------------------------------------------------------------------------------
_FINGERPRINTS: dict[tuple, str] = {}


def _file_fingerprint(path: Path) -> str:
    st = path.stat()
    # ctime cannot be set back by a user (os.utime restores only atime/mtime), so it guards the memo
    key = (str(_real(path)), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    digest = _FINGERPRINTS.get(key)
    if digest is None:
        digest = sha256_file(path)
        _FINGERPRINTS[key] = digest
    return digest


def fingerprint(path: PathLike) -> str:
    """A content hash of a file or a folder (names and bytes), for cache keys; never mtime-based.

    The full SHA-256 is computed once per file version and remembered for the process.
    """
    path = Path(path)
    if path.is_file():
        return _file_fingerprint(path)
    if path.is_dir():
        h = hashlib.sha256()
        for p in sorted(path.rglob("*")):
            if p.is_file():
                h.update(p.relative_to(path).as_posix().encode() + b"\0")
                h.update(_file_fingerprint(p).encode() + b"\n")
        return h.hexdigest()
    raise InputError("cannot fingerprint a missing path", path=path, fix="check the path")
