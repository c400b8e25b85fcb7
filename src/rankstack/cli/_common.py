"""What verbs share: a sub-command with a worked example, and the error boundary's wording."""

from __future__ import annotations

import argparse
import errno
import os
import textwrap



def add_verb(sub, name: str, help: str, example: str) -> argparse.ArgumentParser:
    """A sub-command whose --help ends with a worked example."""
    return sub.add_parser(name, help=help, description=help,
                          epilog="example:\n" + textwrap.indent(example.strip(), "  "),
                          formatter_class=argparse.RawDescriptionHelpFormatter)


# --- the error boundary's wording (used by rankstack.cli.main) ---------------------------------------
# Why here and not in main(): the rules that turn an exception into one line (which argument a path
# belongs to, the fix for each OS error) are plain functions that tests can call directly.

_OS_FIXES = {
    errno.ENOENT: "check the path; a file or folder on the way does not exist",
    errno.EACCES: "check the permissions of the path, or choose another one",
    errno.EPERM: "the operation is not permitted on this path; choose another one",
    errno.EISDIR: "this is a folder; give the path of a file",
    errno.ENOTDIR: "a part of this path is a file, not a folder; choose another path",
    errno.ENOSPC: "the disk is full; free some space or write somewhere else",
    errno.EDQUOT: "the disk quota is exceeded; free some space or write somewhere else",
    errno.EROFS: "the file system is read-only; write somewhere else",
    errno.EEXIST: "something already exists there; remove it or choose another path",
    errno.ENOTEMPTY: "the folder is not empty; choose another path",
    errno.ENAMETOOLONG: "the path or a name in it is too long; shorten it",
    errno.ELOOP: "the path has a loop of symbolic links; fix the links",
    errno.EMFILE: "too many open files; raise the limit (ulimit -n) or use fewer inputs",
    errno.ENFILE: "too many open files on the system; close some programs and retry",
    errno.EXDEV: "the paths are on different file systems; write beside the target instead",
    errno.EIO: "the device reported an I/O error; check the disk, or that this is a regular file",
    errno.EINVAL: "this path cannot be used that way (a special file, e.g. under /proc?); choose a regular file",
    errno.EBUSY: "the path is busy (mounted or in use); choose another one",
    errno.ETXTBSY: "the file is busy; close what uses it and retry",
}


def one_line(text: str, limit: int = 2000) -> str:
    """Collapse a message to one line (messages may quote multi-line fixes) of at most ``limit`` chars."""
    parts = [p.strip() for p in str(text).splitlines() if p.strip()]
    line = "; ".join(parts) or "(no message)"
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _option_names(parser: argparse.ArgumentParser | None) -> dict[str, str]:
    """dest -> how the user spelt it (``--out``, ``--cache-dir``, ``RUN``) over every (sub)parser."""
    names: dict[str, str] = {}
    pending = [parser] if parser is not None else []
    while pending:
        p = pending.pop()
        for action in getattr(p, "_actions", []):
            if isinstance(action, argparse._SubParsersAction):
                pending.extend(action.choices.values())
            elif action.option_strings:
                names.setdefault(action.dest, max(action.option_strings, key=len))
            else:
                names.setdefault(action.dest, str(action.metavar or action.dest).upper())
    return names


def _norm(path: str | os.PathLike) -> str:
    return os.path.normpath(os.path.abspath(os.fsdecode(path)))


def _relation(failed: str, given: str) -> int | None:
    """How an OS error on ``failed`` relates to the user's path ``given`` (lower is closer), or None."""
    if failed == given:
        return 0
    head, name = os.path.split(failed)
    ghead, gname = os.path.split(given)
    if head == ghead and name.startswith(f".{gname}."):
        return 1  # our temporary sibling of it
    if given.startswith(failed.rstrip(os.sep) + os.sep):
        return 2  # a folder on the way to it
    cwd = os.getcwd()
    broad = given == os.sep or cwd == given or cwd.startswith(given.rstrip(os.sep) + os.sep)
    if not broad and failed.startswith(given.rstrip(os.sep) + os.sep):
        return 3  # something inside it (an output folder, a collection)
    return None


def argument_for(path: str | os.PathLike | None, args: argparse.Namespace | None,
                 parser: argparse.ArgumentParser | None = None) -> tuple[str, str] | None:
    """``(option, value)`` of the command-line argument a failing path belongs to, if any."""
    if path is None or args is None:
        return None
    try:
        failed = _norm(path)
    except (TypeError, ValueError):
        return None
    names = _option_names(parser)
    best: tuple[int, str, str] | None = None
    for dest, value in vars(args).items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if not isinstance(v, (str, os.PathLike)) or not str(v) or dest in ("verb", "func"):
                continue
            try:
                rank = _relation(failed, _norm(v))
            except (TypeError, ValueError):
                continue
            if rank is not None and (best is None or rank < best[0]):
                best = (rank, names.get(dest, "--" + dest.replace("_", "-")), os.fsdecode(v))
    return None if best is None else (best[1], best[2])


def _is_temporary(path: str) -> bool:
    name = os.path.basename(path)
    return name.startswith(".") and (".tmp" in name or ".old-" in name)


def describe_os_error(exc: OSError, args: argparse.Namespace | None = None,
                      parser: argparse.ArgumentParser | None = None) -> str:
    """One line for an OSError: the argument and path involved, what the system said, and a fix."""
    first = os.fsdecode(exc.filename) if isinstance(exc.filename, (str, bytes, os.PathLike)) else None
    second = os.fsdecode(exc.filename2) if isinstance(exc.filename2, (str, bytes, os.PathLike)) else None
    if first and second:
        path = second if _is_temporary(first) else first if _is_temporary(second) else None
        shown = path or f"{first} -> {second}"
    else:
        path = first or second
        shown = path
    reason = exc.strerror or type(exc).__name__
    fix = _OS_FIXES.get(exc.errno or -1, "check the path and retry")
    if exc.errno == errno.ENOENT and path and os.path.isdir(os.path.dirname(_norm(path))) \
            and not os.path.exists(path) and _is_temporary(path):
        fix = "this folder does not accept new files (a special file system such as /proc?); write elsewhere"
    where = argument_for(path or first, args, parser)
    if where is not None:
        option, value = where
        detail = "" if path is not None and _norm(path) == _norm(value) else f" (at {shown})"
        return one_line(f"{option} {value}: {reason}{detail} (fix: {fix})")
    if shown:
        return one_line(f"{shown}: {reason} (fix: {fix})")
    return one_line(f"operating system error: {reason} ({exc}) (fix: {fix})")


def _path_in_traceback(exc: BaseException) -> str | None:
    """The innermost ``path`` a rankstack function was working on when ``exc`` was raised."""
    tb = exc.__traceback__
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        if not frame.f_globals.get("__name__", "").startswith("rankstack"):
            continue
        for key in ("path", "file", "filename"):
            value = frame.f_locals.get(key)
            if isinstance(value, (str, os.PathLike)) and str(value):
                return os.fsdecode(value)
    return None


def describe_failure(exc: BaseException, args: argparse.Namespace | None = None,
                     parser: argparse.ArgumentParser | None = None) -> tuple[int, str]:
    """Exit status and the one line to print for an exception that reached the CLI.

    2 for bad input or an environment problem the user can fix; 1 for a bug in rankstack.
    """
    from rankstack.errors import RankstackError

    if isinstance(exc, RankstackError):
        text = str(exc)
        where = argument_for(getattr(exc, "path", None), args, parser)
        if where is not None and where[0].startswith("-") and where[0] not in text:
            text = f"{where[0]}: {text}"  # which option the file came from
        return 2, one_line(text)
    if isinstance(exc, OSError):
        return 2, describe_os_error(exc, args, parser)
    path = _path_in_traceback(exc)
    where = f"{path}: " if path else ""
    if isinstance(exc, OverflowError):
        return 2, one_line(f"{where}a number is too large ({exc}) (fix: use values within the "
                           "normal range, e.g. relevance grades and labels are small integers)")
    if isinstance(exc, MemoryError):
        return 2, one_line(f"{where}out of memory (fix: check the input is what you meant (a huge line "
                           "or file?), use a smaller input or depth, or run with more memory)")
    if isinstance(exc, UnicodeError):
        return 2, one_line(f"{where}text cannot be encoded or decoded: {exc} (fix: use UTF-8 files and "
                           "arguments)")
    if isinstance(exc, TypeError):
        return 2, one_line(f"{where}a value has the wrong type: {exc} (fix: check the arguments and "
                           "the settings in your files; rerun with --debug to see where)")
    return 1, one_line(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug and report it)")
