"""Concurrent writers and readers on one index path: every read must succeed and verify.

Question: does a crash-safe folder save (rankstack.storage) keep a complete, verified artefact at the
path while N processes replace it and M processes load it, for S seconds?

    python benchmarks/stress_storage.py --writers 8 --readers 8 --seconds 30

Prints a JSON summary (saves, loads, failures, final verification) and exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path


def _docs(n: int):
    from rankstack.data.beir import Document

    return [Document(f"d{i}", "", f"word{i} common text number {i}") for i in range(n)]


def _no_exchange() -> None:
    """Force the two-rename fallback (as on a system without renameat2) to stress its recovery."""
    from rankstack import storage

    storage.swap._exchange = lambda a, b: False


def writer(path: str, seconds: float, seed: int, out, fallback: bool = False) -> None:
    from rankstack.retrieve.bm25 import BM25Retriever

    if fallback:
        _no_exchange()

    saves, failures, deadline = 0, [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        n = 5 + (seed * 7 + saves) % 20  # every save has a different size, so mixes are visible
        try:
            BM25Retriever().index(_docs(n)).save(path, overwrite=True)
            saves += 1
        except Exception as exc:  # noqa: BLE001 - counted and reported
            failures.append(f"{type(exc).__name__}: {exc}")
    out.put(("writer", saves, failures[:5], len(failures)))


def reader(path: str, seconds: float, out, fallback: bool = False) -> None:
    from rankstack.retrieve.bm25 import BM25Retriever
    from rankstack.types import Queries

    loads, failures, deadline = 0, [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            r = BM25Retriever.load(path)  # verifies every checksum
            run = r(Queries(("q",), ("common",)))
            if len(run) != r.num_docs:  # every document holds 'common': a mixed index would differ
                raise RuntimeError(f"{len(run)} hits for {r.num_docs} documents")
            loads += 1
        except Exception as exc:  # noqa: BLE001
            failures.append(f"{type(exc).__name__}: {exc}")
    out.put(("reader", loads, failures[:5], len(failures)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--readers", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--fallback", action="store_true", help="force the two-rename fallback swap")
    ap.add_argument("--path", default=None, help="index path (default: a temporary folder)")
    args = ap.parse_args(argv)
    from rankstack.retrieve.bm25 import BM25Retriever

    path = Path(args.path or tempfile.mkdtemp(prefix="rankstack-stress-")) / "idx"
    BM25Retriever().index(_docs(5)).save(path, overwrite=True)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=writer, args=(str(path), args.seconds, i, out, args.fallback)) for i in range(args.writers)]
    procs += [ctx.Process(target=reader, args=(str(path), args.seconds, out, args.fallback)) for _ in range(args.readers)]
    for p in procs:
        p.start()
    results = [out.get(timeout=args.seconds + 300) for _ in procs]
    for p in procs:
        p.join()
    summary = {"fallback": args.fallback, "writers": args.writers, "readers": args.readers, "seconds": args.seconds,
               "saves": sum(r[1] for r in results if r[0] == "writer"),
               "loads": sum(r[1] for r in results if r[0] == "reader"),
               "write_failures": sum(r[3] for r in results if r[0] == "writer"),
               "read_failures": sum(r[3] for r in results if r[0] == "reader"),
               "examples": [e for r in results for e in r[2]][:5]}
    final = BM25Retriever.load(path)
    summary["final_verified_docs"] = final.num_docs
    summary["leftovers"] = sorted(p.name for p in path.parent.iterdir() if p.name != "idx")
    print(json.dumps(summary))
    ok = not summary["write_failures"] and not summary["read_failures"] and not summary["leftovers"]
    return 0 if ok and summary["saves"] > 0 and summary["loads"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
