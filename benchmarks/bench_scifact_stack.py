"""The best stack with an adapted cross-encoder (issue 13); scifact by default, any collection with --collection.

Stacks fused by z-score CombSUM (per query, each run's scores standardised, then summed) over the
runs they share: BM25 (k1=0.9, b=0.4) top 1000, the ADORE query encoder over MiniLM's document
vectors top 1000 (issue 15, benchmarks/biencoder.md), and a cross-encoder's reranking of BM25's top
100 (a run file written by ``rankstack rerank``, e.g. by bench_adapt.py); each cross-encoder also
stacked with MiniLM alone, z(minilm, CE), for a model that reads BM25's score in its input. Every stack is compared with
BM25 and with today's two- and three-way hybrids by ``rankstack.compare`` (paired t and
randomization tests, Holm):

    python benchmarks/bench_scifact_stack.py \
        --ce adapted=.cache/adapt_bench/scifact/adapt-ict-uniform-train-fromce-bm25.run \
        --ce-scores trainonly=.cache/rerank_bench/scores/ce-scifact-v2-scifact-fp32.json --adore .cache/models/bi-adore \
        --baseline bm25 --baseline 'z(bm25,minilm)' --baseline trainonly

Label-free collections (no ADORE model, which is trained on labels), against the untrained RRF hybrid:

    python benchmarks/bench_scifact_stack.py --collection cranfield --adore none \
        --ce adapted=.cache/adapt_bench/cranfield-labelfree/adapt-llm-instruct-uniform-labelfree-bm25.run \
        --run hybrid=.cache/adapt_bench/cranfield-labelfree/hybrid.run --baseline bm25 --baseline hybrid
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def named(spec: str, folder: bool = False) -> tuple[str, str]:
    """``NAME=PATH`` -> (name, path); anything else is an argparse error (one line, no traceback)."""
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {spec!r}")
    if not (Path(path).is_dir() if folder else Path(path).is_file()):
        raise argparse.ArgumentTypeError(f"{path}: no such {'folder' if folder else 'file'}")
    return name, path


def named_folder(spec: str) -> tuple[str, str]:
    return named(spec, folder=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ce", action="append", default=[], type=named, metavar="NAME=RUN", help="a cross-encoder's reranking run")
    ap.add_argument("--ce-scores", action="append", default=[], type=named, metavar="NAME=JSON",
                    help="a cross-encoder's pair scores saved by 'bench_rerank.py cost' (.cache/rerank_bench/scores/"
                         "MODEL-scifact-fp32.json: {'pairs': {'QID\\tDOCID': score}}), used as a reranking run")
    ap.add_argument("--run", action="append", default=[], type=named, metavar="NAME=RUN",
                    help="another run to compare as it is, not stacked (e.g. hybrid=.cache/adapt_bench/C/hybrid.run, "
                         "the untrained RRF hybrid)")
    ap.add_argument("--dense", action="append", default=[], type=named_folder, metavar="NAME=ENCODER",
                    help="another dense retriever (a bi-encoder folder, e.g. one adapted by 'rankstack train "
                         "biencoder --synthetic-queries') stacked like MiniLM: z(bm25,NAME) and z(bm25,NAME,CE)")
    ap.add_argument("--adore", default=".cache/models/bi-adore", help="the ADORE query encoder folder ('none': "
                                                                     "no ADORE stacks)")
    ap.add_argument("--collection", default="scifact")
    ap.add_argument("--split", default="test")
    ap.add_argument("--cache-dir", default=".cache/rankstack")
    ap.add_argument("--baseline", action="append", default=None,
                    help="compare every run with this one (repeatable; default: bm25 and z(bm25,minilm))")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    from bench_biencoder import cpu_name, query_side_retriever

    from rankstack import Collection, Context, compare, parse_pipeline
    from rankstack.data.trec import read_run
    from rankstack.retrieve.fusion import fuse_runs

    coll = Collection(args.collection)
    queries, qrels = coll.queries(args.split), coll.qrels(args.split)
    ctx = Context(collection=coll, cache_dir=Path(args.cache_dir))
    runs = {"bm25": (parse_pipeline("bm25(k1=0.9, b=0.4)", ctx) % 1000)(queries).replace(name="bm25"),
            "minilm": (parse_pipeline("dense(encoder='minilm')", ctx) % 1000)(queries).replace(name="minilm")}
    for name, path in args.run:
        runs[name] = read_run(path).replace(name=name)
    for name, encoder in args.dense:
        runs[name] = (parse_pipeline(f"dense(encoder='{encoder}')", ctx) % 1000)(queries).replace(name=name)
    if args.adore != "none" and Path(args.adore).is_dir():
        runs["adore"] = (query_side_retriever(coll, args.adore, args.cache_dir) % 1000)(queries).replace(name="adore")

    def z(*names: str) -> None:
        runs[f"z({','.join(names)})"] = fuse_runs([runs[n] for n in names], method="combsum",
                                                  norm="z-score").replace(name=f"z({','.join(names)})")

    z("bm25", "minilm")
    if "adore" in runs:
        z("bm25", "adore")
    for dense, _ in args.dense:
        z("bm25", dense)
    for name, path in args.ce_scores:
        from rankstack.types import Run

        by_query: dict[str, dict[str, float]] = {}
        for key, value in json.loads(Path(path).read_text())["pairs"].items():
            qid, docid = key.split("\t")
            by_query.setdefault(qid, {})[docid] = float(value)
        runs[name] = Run.from_dict(by_query, name=name)
    for name, path in args.ce + args.ce_scores:
        if name not in runs:
            runs[name] = read_run(path).replace(name=name)
        z("bm25", name)
        z("bm25", "minilm", name)
        z("minilm", name)  # a model with BM25's score in its input already carries BM25
        for dense, _ in args.dense:
            z("bm25", dense, name)
        if "adore" in runs:
            z("bm25", "adore", name)
    report = {"cpu": cpu_name(), "runs": sorted(runs), "comparisons": {}}
    for baseline in args.baseline or ["bm25", "z(bm25,minilm)"]:
        comp = compare(runs, qrels, ["nDCG@10", "AP"], baseline=baseline)
        print(f"\n== {args.collection} {args.split} ({len(queries)} queries), baseline {baseline}")
        print(comp.to_text())
        full = comp.to_dict()  # per-query values dropped: 300 queries x 13 runs x 3 baselines is ~1.5 MB
        full["stats"] = {m: {r: {k: v for k, v in st.items() if not k.startswith("per_query")}
                             for r, st in by_run.items()} for m, by_run in full["stats"].items()}
        report["comparisons"][baseline] = full
    report["uptime"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
