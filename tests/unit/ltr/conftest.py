"""LTR fixtures: five synthetic LETOR partitions S1..S5."""

from __future__ import annotations

from pathlib import Path

import pytest

from rankstack.data.letor import write_letor
from tests.fixtures.letor import synthetic


@pytest.fixture
def letor_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "letor"
    folder.mkdir()
    for k in range(1, 6):
        write_letor(synthetic(12, seed=k, prefix=f"s{k}q", name=f"S{k}"), folder / f"S{k}.txt")
    return folder
