"""``rankstack <verb>``: a thin command line over the library.

Each verb lives in its own module in this package and exposes ``register(subparsers)``; verbs are
discovered here, so adding one never edits this file.

One error boundary (``main``): bad input and the operating system's refusals (a RankstackError, any
OSError, an overflow, running out of memory, undecodable text, a value of the wrong type) print ONE
line on stderr naming the path or the argument and a fix, and exit 2. Anything else is a bug in
rankstack: one line asking for a ``--debug`` rerun, exit 1. ``--debug`` (or ``RANKSTACK_DEBUG=1``)
shows the traceback instead. Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from typing import NoReturn

from rankstack.cli._common import describe_failure

__all__ = ["main", "build_parser"]

_DEBUG_HELP = "show the full traceback of an error (also RANKSTACK_DEBUG=1)"


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (the usage block would make it several): ``prog: error: ...``."""

    def error(self, message: str) -> NoReturn:
        from rankstack.cli._common import one_line

        self.exit(2, f"{self.prog}: error: {one_line(message)} (fix: see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rankstack",
        description="Build, train and evaluate ranking pipelines on a CPU, offline.",
        epilog="Run 'rankstack VERB --help' for a verb's options and an example.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
    _add_debug_everywhere(sub)
    return parser


def _add_debug_everywhere(sub: argparse._SubParsersAction) -> None:
    """Accept ``--debug`` after the verb too (``rankstack evaluate ... --debug``)."""
    pending = list(sub.choices.values())
    while pending:
        p = pending.pop()
        if "--debug" not in p._option_string_actions:
            p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
        for action in p._actions:  # nested verbs: 'train reranker', 'ltr cv', ...
            if isinstance(action, argparse._SubParsersAction):
                pending.extend(action.choices.values())


def main(argv: list[str] | None = None) -> int:
    debug = os.environ.get("RANKSTACK_DEBUG", "") not in ("", "0") or "--debug" in (
        sys.argv[1:] if argv is None else argv)
    args = parser = None
    prog = "rankstack"
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        debug = debug or bool(getattr(args, "debug", False))
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                            format="%(levelname)s %(name)s: %(message)s")
        for noisy in ("bm25s", "faiss", "sentence_transformers", "transformers", "httpx", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.INFO if args.verbose else logging.WARNING)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        prog = " ".join(["rankstack", *(v for v in (getattr(args, "verb", None),) if v)])
        result = args.func(args)
    except KeyboardInterrupt:
        print("rankstack: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `rankstack ... | head`: the reader left; nothing to report
        _silence_stdout()
        return 1
    except Exception as exc:
        if debug:
            raise
        code, message = describe_failure(exc, args, parser)
        print(f"{prog}: error: {message}", file=sys.stderr)
        return code
    return int(result or 0)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
