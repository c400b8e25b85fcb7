"""``rankstack serve``: help with an example; bad input is one line and exit 2 before any server starts."""

from __future__ import annotations

import pytest

from rankstack.cli import main


def test_help_has_an_example(capsys):
    with pytest.raises(SystemExit) as info:
        main(["serve", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "example:" in out and "--collection" in out and "--queue" in out


@pytest.mark.parametrize("argv,needle", [(["serve", "bm25"], "--collection is required"),
                                         (["serve", "bm25", "--collection", "x", "--workers", "0"], "--workers"),
                                         (["serve", "nothere.toml"], "does not exist")])
def test_bad_input_is_one_line_exit_2(capsys, argv, needle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err
