"""Options shared by verbs: the collection, its data root and split, caching."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from rankstack.data.beir import Collection


def add_verb(sub, name: str, help: str, example: str) -> argparse.ArgumentParser:
    """A sub-command whose --help ends with a worked example."""
    return sub.add_parser(name, help=help, description=help,
                          epilog="example:\n" + textwrap.indent(example.strip(), "  "),
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def add_collection_args(p: argparse.ArgumentParser, split_default: str = "test") -> None:
    p.add_argument("--collection", required=True,
                   help="a BEIR folder, or a collection name under the data root (e.g. scifact)")
    p.add_argument("--data-root", default=None,
                   help="folder holding collections by name (default: $RANKSTACK_DATA or ../shared/data)")
    p.add_argument("--split", default=split_default, help=f"qrels split (default: {split_default})")


def open_collection(args: argparse.Namespace) -> Collection:
    return Collection(args.collection, data_root=args.data_root)


def add_cache_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-dir", type=Path, default=Path(".cache/rankstack"),
                   help="where indexes and stage outputs are cached (default: .cache/rankstack); "
                        "'none' disables caching")


def cache_dir(args: argparse.Namespace) -> Path | None:
    return None if str(args.cache_dir).lower() == "none" else args.cache_dir
