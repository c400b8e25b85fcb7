"""The crash-safe folder swap behind :func:`atomic_directory` (see :mod:`rankstack.storage`).

Hand-written: no library replaces a folder atomically with refusal rules, a lock and recovery.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import re
import secrets
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from rankstack.errors import RankstackError
from rankstack.storage.paths import (MANIFEST, PathLike, _check_target, _chmod_default, _fsync_dir, _real,
                                     artefact_kind)

log = logging.getLogger("rankstack.storage")


# the folder swap -------------------------------------------------------------------------------------
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{8}\.(?P<what>tmp|old)$")


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


@contextlib.contextmanager
def _locked(folder: Path, blocking: bool = True) -> Iterator[bool]:
    """An advisory exclusive lock on ``folder`` (flock); yields False if non-blocking and busy."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks, saves still atomic
        yield True
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _recover(path: Path) -> None:
    """Restore an old artefact left by an interrupted two-rename swap; remove dead writers' leftovers.

    Call with the parent's lock held.
    """
    parent = path.parent
    try:
        names = os.listdir(parent)
    except OSError:
        return
    olds, dead = [], []
    for entry in names:
        m = _LEFTOVER.match(entry)
        if not m or m["name"] != path.name:
            continue
        if m["what"] == "old":
            olds.append(parent / entry)
        elif not _alive(int(m["pid"])):
            dead.append(parent / entry)
    if olds and not os.path.lexists(path):
        best = max(olds, key=lambda p: p.stat().st_mtime_ns)
        if artefact_kind(best) is not None:
            os.rename(best, path)
            log.warning("restored %s from an interrupted save", path)
            olds.remove(best)
    for leftover in dead + [o for o in olds if not _alive(int(_LEFTOVER.match(o.name)["pid"]))]:
        shutil.rmtree(leftover, ignore_errors=True)


def recover(path: PathLike) -> None:
    """Best-effort recovery of ``path`` after a crash (used by loads; never blocks, never raises)."""
    path = Path(path)
    with contextlib.suppress(OSError):
        if not path.parent.is_dir():
            return
        with _locked(path.parent, blocking=False) as got:
            if got:
                _recover(path)


def _fsync_tree(folder: Path) -> None:
    for root, dirs, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(root))


def _chmod_tree(folder: Path) -> None:
    for root, dirs, files in os.walk(folder):
        _chmod_default(Path(root), directory=True)


_STEP_HOOK: Callable[[str], None] | None = None  # tests inject crashes between steps


def _step(name: str) -> None:
    if _STEP_HOOK is not None:
        _STEP_HOOK(name)


def _commit(tmp: Path, path: Path, overwrite: bool, inputs: tuple, kind: str) -> None:
    with _locked(path.parent):
        _recover(path)
        _check_target(path, overwrite, inputs, kind)
        _step("locked")
        if os.path.lexists(path) and os.listdir(path):
            if _exchange(tmp, path):
                _step("exchanged")
                _fsync_dir(path.parent)
                shutil.rmtree(tmp, ignore_errors=True)
                _step("removed-old")
                return
            old = tmp.with_name(tmp.name[: -len(".tmp")] + ".old")
            os.rename(path, old)
            _step("moved-old")
            os.rename(tmp, path)
            _step("moved-new")
            _fsync_dir(path.parent)
            shutil.rmtree(old, ignore_errors=True)
            _step("removed-old")
            return
        os.rename(tmp, path)  # replaces an empty folder in one step on POSIX
        _step("moved-new")
        _fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_directory(path: PathLike, *, overwrite: bool = False,
                     inputs: Iterable[PathLike] = ()) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``path`` atomically; on error nothing changes.

    The caller writes its files and a manifest (:func:`write_manifest`) into the yielded folder.
    Refusals (before any work, and again at commit under the lock): ``path`` or its parent is a file;
    ``path`` is, contains or lies inside one of ``inputs``; ``path`` is a non-empty folder that is not
    a rankstack artefact, or an artefact of another kind; or one of the same kind and not
    ``overwrite``.
    """
    path = Path(path)
    if path.is_symlink() and path.is_dir():
        path = _real(path)  # replace the folder the link points to, keep the link
    inputs = tuple(i for i in inputs if i is not None)
    if path.parent.is_dir():
        with _locked(path.parent):  # not mid-swap of another writer: the check sees a whole folder
            _check_target(path, overwrite, inputs, None)
    else:
        _check_target(path, overwrite, inputs, None)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    os.mkdir(tmp)
    try:
        yield tmp
        kind = artefact_kind(tmp)
        if kind is None:
            raise RankstackError(f"internal error: a save into {path} wrote no {MANIFEST}")
        _chmod_tree(tmp)
        _fsync_tree(tmp)
        _step("built")
        _commit(tmp, path, overwrite, inputs, kind)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
