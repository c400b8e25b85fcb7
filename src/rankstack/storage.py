"""Crash-safe artefact folders, atomic files and checksummed manifests for everything rankstack saves.

Why: a crash, a kill or a bad input half-way through a save must never leave a corrupt index or model
where a good one was, and a save must never destroy anything that is not an older artefact of the
same kind (a collection, a thesis folder, the current directory).

How a folder save works (:func:`atomic_directory`):

1. The target is checked *before* any work: a path inside, equal to or containing an input
   (collection, data root) is refused; so is an existing non-empty folder that is not a rankstack
   artefact, an artefact of another kind, and an artefact of the same kind unless ``overwrite``.
2. The new artefact is built in a hidden sibling ``.NAME.PID-RANDOM.tmp`` and fsynced.
3. Under an advisory lock on the parent folder (concurrent writers queue), the target is checked
   again and the new folder is swapped in with one ``renameat2(RENAME_EXCHANGE)`` — a single atomic
   step, so the path always holds a complete artefact — and the old one (now at the temporary name)
   is removed. Where the exchange is unavailable (not Linux, or a file system without it) two renames
   are used with a *recovery step*: the old folder waits at ``.NAME.PID-RANDOM.old`` and any later
   save or load restores it if the path is missing. Leftovers of killed writers (their PID is gone)
   are removed on the next save or load.

Readers use :func:`read_consistently`, which retries a load if the artefact was replaced while it
was being read (manifests carry a unique id). Manifests (:func:`write_manifest`) record kind, format
version, parameters, library versions and a SHA-256 per file, and carry a checksum of their own;
:func:`read_manifest` refuses a changed manifest, a missing, changed or unlisted file, and an empty
file list. Files are created with the user's umask. Hand-written: no library offers crash-safe
folder replacement with these refusal rules.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from rankstack.errors import InputError, RankstackError

__all__ = ["atomic_write_text", "atomic_write_bytes", "atomic_directory", "sha256_file",
           "write_manifest", "read_manifest", "read_consistently", "check_output_file", "check_output_folder",
           "fingerprint", "artefact_kind", "MANIFEST"]

MANIFEST = "manifest.json"
log = logging.getLogger(__name__)
T = TypeVar("T")
PathLike = str | os.PathLike


# permissions ---------------------------------------------------------------------------------------
def _umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask is process-wide)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    old = os.umask(0o022)
    os.umask(old)
    return old


def _chmod_default(path: Path, directory: bool = False) -> None:
    """mkstemp/mkdtemp create 0600/0700; give new outputs the mode ``open()`` would have given."""
    with contextlib.suppress(OSError):
        os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# target checks -------------------------------------------------------------------------------------
def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _check_not_input(path: Path, inputs: Iterable[PathLike], what: str) -> None:
    target = _real(path)
    for item in inputs:
        if item is None:
            continue
        source = _real(Path(item))
        if target == source or source in target.parents:
            raise InputError(f"{what} {path} is inside the input {source}; rankstack never writes into "
                             "its inputs", path=path, fix="choose an output path outside the input")
        if target in source.parents:
            raise InputError(f"{what} {path} contains the input {source}; replacing it would destroy "
                             "the input", path=path, fix="choose an output path outside the input")


def artefact_kind(folder: PathLike) -> str | None:
    """The ``kind`` in a folder's manifest, or None when it is not a rankstack artefact."""
    mpath = Path(folder) / MANIFEST
    try:
        data = json.loads(mpath.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    kind = data.get("kind") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) else None


def _check_target(path: Path, overwrite: bool, inputs: Iterable[PathLike], kind: str | None) -> None:
    _check_not_input(path, inputs, "output folder")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"cannot create a folder under {parent}: it is a file", path=path,
                                 fix="choose an output path whose parent is a folder")
            break
    if not os.path.lexists(path):
        return
    if not path.is_dir():
        raise InputError("output path exists and is not a folder", path=path,
                         fix="choose another path; rankstack never replaces a file with a folder")
    try:
        entries = os.listdir(path)
    except OSError as exc:
        raise InputError(f"cannot read the existing output folder ({exc.strerror})", path=path) from None
    if not entries:
        return
    existing = artefact_kind(path)
    if existing is None:
        raise InputError("output folder exists, is not empty and is not a rankstack artefact; refusing "
                         "to replace it", path=path, fix="choose a new or empty folder")
    if kind is not None and existing != kind:
        raise InputError(f"output folder holds a rankstack {existing!r}, not a {kind!r}; refusing to "
                         "replace it", path=path, fix="choose another folder")
    if not overwrite:
        raise InputError(f"output folder already holds a rankstack {existing!r}", path=path,
                         fix="pass --overwrite (overwrite=True) to replace it, or choose another folder")


def check_output_folder(path: PathLike, *, overwrite: bool = False, inputs: Iterable[PathLike] = (),
                        kind: str | None = None) -> Path:
    """Check an output folder *before* long work, with the rules :func:`atomic_directory` applies."""
    path = Path(path)
    _check_target(path, overwrite, tuple(i for i in inputs if i is not None), kind)
    return path


def check_output_file(path: PathLike, inputs: Iterable[PathLike] = ()) -> Path:
    """Refuse an output file that is an input, lies inside one, is a folder or sits under a file."""
    path = Path(path)
    _check_not_input(path, inputs, "output file")
    if path.is_dir():
        raise InputError("output path is a folder, expected a file", path=path,
                         fix="give a file name, e.g. out/run.trec")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"cannot write under {parent}: it is a file", path=path,
                                 fix="choose an output path whose parent is a folder")
            break
    return path


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


# manifests -------------------------------------------------------------------------------------------
def sha256_file(path: PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _library_versions(names: list[str]) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for n in names:
        try:
            out[n] = version(n)
        except PackageNotFoundError:
            pass
    return out


def _manifest_digest(manifest: Mapping[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _listed_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and p.relative_to(folder).as_posix() != MANIFEST)


def write_manifest(folder: PathLike, kind: str, format_version: int, params: Mapping[str, Any],
                   libraries: list[str] | None = None, extra: Mapping[str, Any] | None = None) -> dict:
    """Checksum every file in ``folder`` and write ``manifest.json`` with a checksum of its own."""
    folder = Path(folder)
    files = {name: sha256_file(folder / name) for name in _listed_files(folder)}
    if not files:
        raise RankstackError(f"internal error: refusing to write a manifest for an empty {kind}")
    manifest = {"kind": kind, "format_version": format_version, "params": dict(params),
                "libraries": _library_versions(["rankstack", *(libraries or [])]),
                "files": files, "id": secrets.token_hex(8),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                **(dict(extra) if extra else {})}
    manifest = json.loads(json.dumps(manifest))  # exactly what a reader will see
    manifest["manifest_sha256"] = _manifest_digest(manifest)
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def read_manifest(folder: PathLike, kind: str, supported_versions: tuple[int, ...],
                  verify: bool = True) -> dict:
    """Load and check ``manifest.json``: its own checksum, kind, version, complete file list and
    (unless ``verify`` is False) every file's SHA-256."""
    folder = Path(folder)
    if not os.path.lexists(folder):
        recover(folder)
    mpath = folder / MANIFEST
    if not folder.is_dir():
        raise InputError(f"{kind} folder does not exist", path=folder, fix="check the path")
    recover(folder)
    if not mpath.is_file():
        raise InputError(f"not a rankstack {kind}: {MANIFEST} is missing", path=folder,
                         fix=f"point to a folder written by rankstack's {kind} save")
    try:
        manifest = json.loads(mpath.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"manifest is not valid JSON ({exc})", path=mpath, fix="rebuild it") from None
    if not isinstance(manifest, dict):
        raise InputError("manifest is not a JSON object", path=mpath, fix="rebuild it")
    if manifest.get("kind") != kind:
        raise InputError(f"manifest describes a {manifest.get('kind')!r}, expected a {kind!r}", path=mpath)
    if manifest.get("format_version") not in supported_versions:
        raise InputError(f"format version {manifest.get('format_version')!r} is not supported "
                         f"(this rankstack reads {list(supported_versions)})", path=mpath,
                         fix="rebuild it with this version of rankstack")
    if manifest.get("manifest_sha256") != _manifest_digest(manifest):
        raise InputError("manifest was changed after it was written (its checksum does not match)",
                         path=mpath, fix="rebuild the artefact; never edit a manifest by hand")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise InputError("manifest lists no files", path=mpath, fix="rebuild the artefact")
    for name in files:
        if not isinstance(name, str) or name.startswith("/") or ".." in Path(name).parts:
            raise InputError(f"manifest lists an invalid file name {name!r}", path=mpath, fix="rebuild it")
    unlisted = sorted(set(_listed_files(folder)) - set(files))
    if unlisted:
        raise InputError(f"file {unlisted[0]!r} is not listed in the manifest ({len(unlisted)} unlisted)",
                         path=folder, fix="remove files you added to the folder, or rebuild it")
    for name, digest in files.items():
        f = folder / name
        if not f.is_file():
            raise InputError(f"file {name!r} listed in the manifest is missing", path=folder,
                             fix="the folder is incomplete: rebuild it")
        if verify and sha256_file(f) != digest:
            raise InputError(f"checksum of {name!r} does not match the manifest (file changed or "
                             "corrupt)", path=f, fix="rebuild it")
    return manifest


def _identity(folder: Path) -> tuple[int, bytes] | None:
    try:
        return os.stat(folder).st_ino, (folder / MANIFEST).read_bytes()
    except OSError:
        return None


def read_consistently(folder: PathLike, load: Callable[[], T], attempts: int = 50) -> T:
    """Run ``load()`` until the artefact at ``folder`` was not replaced while it ran.

    Why: a concurrent save swaps a whole new folder in; a reader that read the old manifest and a new
    file (or a file of a folder already removed) must start again, not fail or mix versions.
    """
    folder = Path(folder)
    for attempt in range(attempts):
        before = _identity(folder)
        try:
            result = load()
        except (InputError, OSError):
            if before is not None and _identity(folder) == before:
                raise
            if attempt == attempts - 1:
                raise
            time.sleep(0.001 * attempt)
            continue
        if before is not None and _identity(folder) == before:
            return result
    raise InputError("the artefact kept changing while it was being read", path=folder,
                     fix="retry when no other process is saving to it")


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
