"""Output-path rules shared by every save: never into or over an input, never over a non-artefact.

Why one module: files and folders are refused by the same rules (inputs, a file where a folder is
expected, a folder that is not a rankstack artefact of the same kind); also the umask and fsync
helpers every writer needs.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from rankstack.errors import InputError

MANIFEST = "manifest.json"
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
            where = "is the input" if target == source else "is inside the input"
            raise InputError(f"{what} {path} {where} {source}; rankstack never writes into its inputs",
                             path=path, fix="choose an output path outside the input")
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
