"""What does crash-safe saving cost? Median save and verified-load times of a BM25 index.

    python benchmarks/bench_save_load.py --collection scifact --repeats 7

Run it with PYTHONPATH pointing at another checkout's src/ to compare two versions in one session.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collection", default="scifact")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    import inspect

    from rankstack.data.beir import Collection
    from rankstack.retrieve.bm25 import BM25Retriever

    r = BM25Retriever.from_collection(Collection(args.collection))
    kw = {"overwrite": True} if "overwrite" in inspect.signature(r.save).parameters else {}
    path = Path(tempfile.mkdtemp()) / "idx"
    saves, loads = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        r.save(path, **kw)
        saves.append(time.perf_counter() - t)
        t = time.perf_counter()
        BM25Retriever.load(path)
        loads.append(time.perf_counter() - t)
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    print(json.dumps({"collection": args.collection, "bytes": size, "save_s": round(statistics.median(saves), 4),
                      "load_s": round(statistics.median(loads), 4), "repeats": args.repeats}))


if __name__ == "__main__":
    main()
