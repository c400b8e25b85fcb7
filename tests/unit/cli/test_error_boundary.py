"""The CLI's one error boundary: what each kind of exception becomes (one line; status 2 for bad
input and OS refusals, 1 for bugs, 130 for Ctrl-C), --debug, and naming the argument at fault."""

from __future__ import annotations

import argparse
import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

import rankstack.cli as cli
from rankstack.cli._common import argument_for, describe_failure, describe_os_error, one_line
from rankstack.errors import InputError


def fake_cli(monkeypatch, exc: BaseException) -> None:
    """Make ``rankstack boom --out X`` raise ``exc``."""

    def build() -> argparse.ArgumentParser:
        parser = cli._Parser(prog="rankstack")
        parser.add_argument("-v", "--verbose", action="store_true")
        parser.add_argument("--debug", action="store_true")
        sub = parser.add_subparsers(dest="verb")
        p = sub.add_parser("boom")
        p.add_argument("--out", type=Path)
        p.add_argument("--cache-dir", default=".cache/x")
        p.add_argument("runs", nargs="*")

        def run(args):
            raise exc

        p.set_defaults(func=run)
        cli._add_debug_everywhere(sub)
        return parser

    monkeypatch.setattr(cli, "build_parser", build)
    monkeypatch.delenv("RANKSTACK_DEBUG", raising=False)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("exc, code, words", [
    (InputError("bad thing", path="f.txt", line=3, fix="do it"), 2, ["rankstack boom: error: f.txt:3: bad thing",
                                                                     "(fix: do it)"]),
    (InputError("two\nlines", fix='[pipelines]\nbm25 = "bm25"'), 2, ["two; lines", '[pipelines]; bm25 = "bm25"']),
    (PermissionError(errno.EACCES, "Permission denied", "out/x.run"), 2, ["--out out/x.run", "Permission denied",
                                                                        "permissions"]),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "out/x.run"), 2, ["--out", "Is a directory", "folder"]),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "out"), 2, ["--out out/x.run", "(at out)", "is a file"]),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "elsewhere/y"), 2, ["elsewhere/y",
                                                                                      "does not exist"]),
    (OSError(errno.ENOSPC, "No space left on device", "out/x.run"), 2, ["--out", "No space left", "disk is full"]),
    (OSError(errno.EROFS, "Read-only file system", "out/.x.run.123.tmp"), 2, ["--out out/x.run", "read-only"]),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), 2, ["Disk quota exceeded", "quota"]),
    (OSError(errno.ENAMETOOLONG, "File name too long", "out/x.run"), 2, ["too long", "shorten"]),
    (OSError(errno.EXDEV, "Invalid cross-device link", "out/.x.run.1.tmp", "out/x.run"), 2, ["--out out/x.run"]),
    (OSError(errno.EIO, "Input/output error"), 2, ["Input/output error"]),
    (OSError("weird"), 2, ["weird"]),
    (OverflowError("int too large to convert to float"), 2, ["too large", "int too large"]),
    (MemoryError(), 2, ["out of memory"]),
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), 2, ["cannot be encoded or decoded",
                                                                           "invalid start byte", "UTF-8"]),
    (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), 2, ["surrogates not allowed"]),
    (TypeError("expected str, bytes or os.PathLike object, not int"), 2, ["wrong type", "not int"]),
    (ValueError("a bug"), 1, ["internal error: ValueError: a bug", "--debug", "report it"]),
    (KeyError("k"), 1, ["internal error: KeyError"]),
    (RecursionError("maximum recursion depth exceeded"), 1, ["internal error: RecursionError"]),
    (AssertionError(), 1, ["internal error: AssertionError"]),
])
def test_each_exception_kind_is_one_line(monkeypatch, capsys, exc, code, words):
    fake_cli(monkeypatch, exc)
    assert cli.main(["boom", "--out", "out/x.run"]) == code
    line = one_error_line(capsys)
    assert line.startswith("rankstack boom: error: ")
    for w in words:
        assert w in line, line


def test_keyboard_interrupt_is_130(monkeypatch, capsys):
    fake_cli(monkeypatch, KeyboardInterrupt())
    assert cli.main(["boom"]) == 130
    assert one_error_line(capsys) == "rankstack: interrupted"


@pytest.mark.parametrize("argv", [["--debug", "boom"], ["boom", "--debug"]])
def test_debug_reraises(monkeypatch, argv):
    fake_cli(monkeypatch, ValueError("a bug"))
    with pytest.raises(ValueError, match="a bug"):
        cli.main(argv)


def test_debug_environment_variable(monkeypatch):
    fake_cli(monkeypatch, OverflowError("big"))
    monkeypatch.setenv("RANKSTACK_DEBUG", "1")
    with pytest.raises(OverflowError):
        cli.main(["boom"])


def test_argparse_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["retrieve", "-k", "many"])
    assert info.value.code == 2
    line = one_error_line(capsys)
    assert line.startswith("rankstack retrieve: error: argument -k") and "'many'" in line and "--help" in line


def test_help_of_every_verb_accepts_debug(capsys):
    with pytest.raises(SystemExit):
        cli.main(["evaluate", "--help"])
    assert "--debug" in capsys.readouterr().out


def test_real_traceback_with_debug_in_a_subprocess(tmp_path):
    bad = tmp_path / "bad.run"
    bad.write_text("q1 Q0 d1 1 oops t\n")
    base = [sys.executable, "-m", "rankstack.cli", "evaluate", "--qrels", str(bad), str(bad)]
    env = {k: v for k, v in os.environ.items() if k != "RANKSTACK_DEBUG"}
    quiet = subprocess.run(base, capture_output=True, text=True, env=env)
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr
    assert len(quiet.stderr.strip().splitlines()) == 1
    loud = subprocess.run(base + ["--debug"], capture_output=True, text=True, env=env)
    assert loud.returncode != 0 and "Traceback" in loud.stderr and "InputError" in loud.stderr


# --- the wording rules, directly ------------------------------------------------------------------
def test_argument_for_prefers_the_closest_relation(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(out=Path("a/b/x.run"), collection="a", runs=["r1.run", "r2.run"], k=5)
    assert argument_for("a/b/x.run", args) == ("--out", "a/b/x.run")
    assert argument_for("a/b/.x.run.77.tmp", args) == ("--out", "a/b/x.run")
    assert argument_for("a/b", args) == ("--out", "a/b/x.run")  # a folder on the way to --out
    assert argument_for("a/corpus.jsonl", args) == ("--collection", "a")  # inside --collection
    assert argument_for("r2.run", args) == ("--runs", "r2.run")
    assert argument_for("/elsewhere", args) is None


def test_argument_for_ignores_the_current_folder_as_a_catch_all(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(out_dir=Path("."), root=Path("/"))
    assert argument_for(tmp_path / "some" / "file", args) is None
    assert argument_for(tmp_path, args) == ("--out-dir", ".")


def test_describe_os_error_without_args():
    line = describe_os_error(PermissionError(errno.EACCES, "Permission denied", "/x/y"))
    assert line == "/x/y: Permission denied (fix: check the permissions of the path, or choose another one)"


def test_overflow_names_the_file_rankstack_was_reading():
    namespace = {"__name__": "rankstack.fake_reader"}
    exec("def reader(path):\n    raise OverflowError('int too large')\n", namespace)  # noqa: S102
    with pytest.raises(OverflowError) as info:
        namespace["reader"]("data/x.txt")
    code, line = describe_failure(info.value)
    assert code == 2 and line.startswith("data/x.txt: a number is too large (int too large)")
    code, line = describe_failure(OverflowError("x"))  # raised outside rankstack: no path to name
    assert line.startswith("a number is too large")


def test_one_line_limits_length():
    assert one_line("a\n\n  b  \n") == "a; b"
    assert len(one_line("x" * 5000)) == 2000
    assert one_line("") == "(no message)"
