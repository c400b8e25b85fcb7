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

from rankstack.storage.files import atomic_write_bytes, atomic_write_text
from rankstack.storage.fingerprint import fingerprint
from rankstack.storage.manifest import read_consistently, read_manifest, sha256_file, write_manifest
from rankstack.storage.paths import MANIFEST, artefact_kind, check_output_file, check_output_folder
from rankstack.storage.swap import atomic_directory, recover

__all__ = ["atomic_write_text", "atomic_write_bytes", "atomic_directory", "sha256_file",
           "write_manifest", "read_manifest", "read_consistently", "check_output_file", "check_output_folder",
           "fingerprint", "artefact_kind", "recover", "MANIFEST"]
