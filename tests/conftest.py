"""Shared fixtures: a tiny self-made BEIR collection, the real data root (skipped when absent) and a
headless Chromium for the browser tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from rankstack.data.beir import default_data_root
from tests.fixtures.beir import write_beir

@pytest.fixture
def tiny_collection(tmp_path: Path) -> Path:
    return write_beir(tmp_path / "tiny")


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = default_data_root()
    if not (root / "scifact" / "corpus.jsonl").is_file():
        pytest.skip(f"shared collections not found under {root}")
    return root


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors on a shared 2-core machine: one torch thread avoids oversubscription (10-50x faster)."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome", "chrome")
CHROMIUM_PATHS = ("/usr/lib/chromium/chromium", "/usr/bin/chromium", "/snap/bin/chromium")


def find_chromium() -> str | None:
    """A headless-capable Chromium: $CHROMIUM_BIN/$CHROME_BIN, then the usual names on PATH, then Debian's
    and snap's paths. Each candidate must answer `--version` with "Chrom": Ubuntu's `chromium-browser`
    can be a stub that only asks for snap, and a dangling name must not pass for a browser."""
    candidates = [os.environ.get("CHROMIUM_BIN"), os.environ.get("CHROME_BIN")]
    candidates += [shutil.which(name) for name in CHROMIUM_NAMES] + list(CHROMIUM_PATHS)
    for cand in dict.fromkeys(c for c in candidates if c):
        if not (os.path.isfile(cand) and os.access(cand, os.X_OK)):
            continue
        try:
            proc = subprocess.run([cand, "--version"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if proc.returncode == 0 and "chrom" in proc.stdout.lower():
            return cand
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a working Chromium. Skips when there is none, except under RANKSTACK_REQUIRE_BROWSER=1
    (.ci/run installs Debian's chromium and sets it), where a missing browser fails instead of skipping."""
    path = find_chromium()
    if path is None:
        msg = "chromium is not installed (apt-get install -y chromium chromium-driver, or set CHROMIUM_BIN)"
        if os.environ.get("RANKSTACK_REQUIRE_BROWSER") == "1":
            pytest.fail(msg + "; RANKSTACK_REQUIRE_BROWSER=1 requires it")
        pytest.skip(msg)
    return path
