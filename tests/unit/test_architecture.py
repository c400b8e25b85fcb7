"""Layering is checked by a tool: the import-linter contracts in pyproject.toml hold for src/, and they
catch an upward import (so this test can fail)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(src: Path, *contracts: str) -> subprocess.CompletedProcess:
    """Run the venv's lint-imports on the package under `src` (not whatever copy is installed)."""
    if not LINT_IMPORTS.is_file():
        pytest.fail(f"{LINT_IMPORTS} is missing: install the dev extra (make test does)")
    env = {**os.environ, "PYTHONPATH": str(src)}
    args = [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")]
    for contract in contracts:
        args += ["--contract", contract]
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=src, timeout=300)


def test_import_contracts_hold():
    proc = lint_imports(ROOT / "src")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " 0 broken" in proc.stdout, proc.stdout


def test_an_upward_import_breaks_the_layers_contract(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "rankstack", src / "rankstack",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    trec = src / "rankstack" / "data" / "trec.py"
    trec.write_text(trec.read_text(encoding="utf-8") + "\nimport rankstack.cli  # deliberate upward import\n",
                    encoding="utf-8")
    proc = lint_imports(src, "layers")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "rankstack.data.trec -> rankstack.cli" in proc.stdout, proc.stdout
