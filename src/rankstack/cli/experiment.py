"""``rankstack experiment FILE.toml [--out DIR]``: run named pipelines, compare, write a report."""

from __future__ import annotations

import argparse
from pathlib import Path

from rankstack.cli._common import add_cache_arg, add_verb, cache_dir


def register(sub) -> None:
    p = add_verb(sub, "experiment",
                 "Run the pipelines of an experiment file, compare them with its baseline (significance "
                 "tests), and write TREC runs, measures.txt, results.json, per_query.csv and report.html.",
                 "rankstack experiment examples/scifact.toml --out out/scifact\n"
                 "# the file:\n"
                 'collection = "scifact"\nsplit = "test"\nmeasures = ["nDCG@10", "AP", "R@100"]\n'
                 'baseline = "bm25"\n[pipelines]\nbm25 = "bm25"\ndense = "dense(encoder=\'minilm\')"\n'
                 'hybrid = "fuse(bm25, dense, method=rrf)"')
    p.add_argument("file", type=Path, help="experiment TOML file")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: out/<file stem>)")
    p.add_argument("--data-root", default=None,
                   help="folder holding collections by name (default: $RANKSTACK_DATA or ../shared/data)")
    p.add_argument("--no-cache", action="store_true", help="recompute every run (still refreshes the cache)")
    p.add_argument("--no-report", action="store_true", help="skip report.html (no matplotlib needed)")
    add_cache_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rankstack.experiment.runner import load_experiment, run_experiment

    spec = load_experiment(args.file)
    out = args.out or Path("out") / args.file.stem
    result = run_experiment(spec, out_dir=out, cache_dir=cache_dir(args), data_root=args.data_root,
                            use_cache=not args.no_cache, report=not args.no_report)
    print((out / "measures.txt").read_text("utf-8"), end="")
    for name in spec.pipelines:
        how = "cached" if result.cached[name] else f"{result.seconds[name]:.1f}s"
        print(f"  {name}: {how}")
    print(f"wrote {out}/ (runs/, measures.txt, results.json, per_query.csv"
          + ("" if args.no_report else ", report.html") + ")")
    return 0
