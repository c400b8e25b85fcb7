"""Atomic writes and JSON manifests for every saved artefact (indexes, models, runs).

Why: a crash or a bad input half-way through a save must never leave a corrupt index or model where
a good one was. Files are written to a temporary sibling and renamed; folders are built in a
temporary sibling folder and swapped in. A manifest records format version, parameters, library
versions and a SHA-256 per file, and loading refuses anything that does not match.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from rankstack.errors import InputError

__all__ = ["atomic_write_text", "atomic_write_bytes", "atomic_directory", "sha256_file",
           "write_manifest", "read_manifest", "MANIFEST"]

MANIFEST = "manifest.json"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_directory(path: str | Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``path``; on error ``path`` is untouched."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError("output path exists and is not a folder", path=path, fix="choose another path")
    if path.exists() and not overwrite:
        raise InputError("output folder exists", path=path, fix="remove it or pass overwrite")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def sha256_file(path: str | Path) -> str:
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


def write_manifest(folder: str | Path, kind: str, format_version: int, params: Mapping[str, Any],
                   libraries: list[str] | None = None, extra: Mapping[str, Any] | None = None) -> dict:
    """Checksum every file in ``folder`` (except the manifest) and write ``manifest.json``."""
    folder = Path(folder)
    files = {p.relative_to(folder).as_posix(): sha256_file(p)
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST}
    manifest = {"kind": kind, "format_version": format_version, "params": dict(params),
                "libraries": _library_versions(["rankstack", *(libraries or [])]),
                "files": files, **(dict(extra) if extra else {})}
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def read_manifest(folder: str | Path, kind: str, supported_versions: tuple[int, ...],
                  verify: bool = True) -> dict:
    """Load ``manifest.json``, check kind, version and (by default) every file's checksum."""
    folder = Path(folder)
    mpath = folder / MANIFEST
    if not folder.is_dir():
        raise InputError(f"{kind} folder does not exist", path=folder, fix="check the path")
    if not mpath.is_file():
        raise InputError(f"not a rankstack {kind}: {MANIFEST} is missing", path=folder,
                         fix=f"point to a folder written by rankstack's {kind} save")
    try:
        manifest = json.loads(mpath.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"manifest is not valid JSON ({exc})", path=mpath) from None
    if manifest.get("kind") != kind:
        raise InputError(f"manifest describes a {manifest.get('kind')!r}, expected a {kind!r}", path=mpath)
    if manifest.get("format_version") not in supported_versions:
        raise InputError(f"format version {manifest.get('format_version')!r} is not supported "
                         f"(this rankstack reads {list(supported_versions)})", path=mpath,
                         fix="rebuild it with this version of rankstack")
    if verify:
        for name, digest in manifest.get("files", {}).items():
            f = folder / name
            if not f.is_file():
                raise InputError(f"file {name!r} listed in the manifest is missing", path=folder,
                                 fix="the folder is incomplete: rebuild it")
            if sha256_file(f) != digest:
                raise InputError(f"checksum of {name!r} does not match the manifest (file changed or "
                                 "corrupt)", path=f, fix="rebuild it")
    return manifest
