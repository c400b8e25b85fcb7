"""Checksummed manifests (with a checksum of their own) and consistent reads of replaced artefacts."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from rankstack.errors import InputError, RankstackError
from rankstack.storage.files import atomic_write_text
from rankstack.storage.paths import MANIFEST, PathLike
from rankstack.storage.swap import recover

T = TypeVar("T")


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
    if "manifest_sha256" not in manifest and "id" not in manifest:
        raise InputError("manifest has no checksum of its own: written by an older rankstack (before 0.1 "
                         "sealed its manifests)", path=mpath, fix="rebuild the artefact with this version")
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
