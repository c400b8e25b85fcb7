"""Helpers for the CLI tests (a plain module: conftest modules should not be imported by name)."""

from __future__ import annotations

from rankstack.cli import main

LETOR_ROWS = {  # qid -> rows of (label, features)
    1: [(2, [0.9, 0.1, 0.5]), (0, [0.1, 0.2, 0.3]), (1, [0.5, 0.5, 0.5])],
    2: [(1, [0.8, 0.3, 0.1]), (0, [0.2, 0.9, 0.4])],
}


def letor_text(first_qid: int) -> str:
    lines = []
    for offset, (q, rows) in enumerate(LETOR_ROWS.items()):
        for i, (label, feats) in enumerate(rows):
            fs = " ".join(f"{j + 1}:{v}" for j, v in enumerate(feats))
            lines.append(f"{label} qid:{first_qid + offset} {fs} # docid = d{first_qid + offset}-{i}")
    return "\n".join(lines) + "\n"


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """``rankstack ARGV`` in-process: (exit status, stdout, stderr)."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code if isinstance(exc.code, int) else 2
    out, err = capsys.readouterr()
    return code, out, err
