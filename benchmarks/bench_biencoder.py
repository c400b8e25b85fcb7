"""Trained bi-encoders (``rankstack train biencoder``) vs BM25 and the untrained MiniLM, with significance.

For each ``--model NAME=SPEC`` (SPEC a dense stage expression: ``dense(encoder='DIR')`` for a trained
bi-encoder, ``dense(index='DIR/index')`` for ADORE's query encoder + fixed index) on each collection:
nDCG@10, AP and R@100 of full-corpus retrieval, compared with BM25 (paired t-test and randomization
test, Holm-corrected; ``rankstack.evaluate.compare``); the untrained MiniLM ``dense`` always runs.
``--query-encoder NAME=DIR`` runs a query encoder trained against fixed MiniLM document vectors (ADORE,
``--freeze-documents``) over any collection's cached MiniLM vectors (zero-shot included). ``--fuse NAME``
also fuses that model with BM25 (RRF k=60 and z-score CombSUM, the two hybrids of examples/scifact.toml,
over the depth-1000 runs) next to today's hybrids over the untrained MiniLM. Corpus vectors are cached
(``--cache-dir``) by encoder id, which includes a checksum of the weights: only a new model encodes.

    nice -n 5 .venv/bin/python benchmarks/bench_biencoder.py --collection scifact \
        --model infonce="dense(encoder='.cache/models/bi-infonce')" --fuse infonce --json bi.json
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import time
from pathlib import Path


def cpu_name() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    return next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "?")


def query_side_retriever(coll, folder: str, cache_dir: str):
    """Documents: the collection's MiniLM vectors (embedding cache); queries: the trained query encoder."""
    from rankstack.retrieve.dense import DenseIndex, DenseRetriever

    base = DenseRetriever.from_collection(coll, encoder="minilm", cache_dir=cache_dir)
    from rankstack.encode.base import load_encoder

    qenc = load_encoder(folder)
    vectors = base.index.vectors_of(base.index.docids.tolist())
    return DenseRetriever(qenc, DenseIndex.build(vectors, base.index.docids, qenc.encoder_id), k=1000)


def disjoint_queries(coll, split: str) -> list[str]:
    """Queries of `split` none of whose relevant documents is relevant to a training query.

    SciFact's train and test claims share many cited abstracts: a model trained on train can gain on
    test by moving those documents, not by matching queries better; this subset removes that path."""
    train_pos = {d for ds in coll.qrels("train").to_dict().values() for d, g in ds.items() if g > 0}
    return [q for q, ds in coll.qrels(split).to_dict().items()
            if any(g > 0 for g in ds.values()) and not any(g > 0 and d in train_pos for d, g in ds.items())]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collection", action="append", default=[], help="collection(s) (default scifact)")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--split", default="test")
    ap.add_argument("--model", action="append", default=[], metavar="NAME=SPEC", help="a trained retriever")
    ap.add_argument("--query-encoder", action="append", default=[], metavar="NAME=DIR",
                    help="a query encoder trained against fixed MiniLM document vectors (ADORE, --freeze-documents): "
                         "retrieves from the collection's cached MiniLM vectors, so it runs zero-shot anywhere")
    ap.add_argument("--fuse", action="append", default=[], metavar="NAME", help="also fuse this model with BM25")
    ap.add_argument("--cache-dir", default=".cache/rankstack")
    ap.add_argument("--runs-dir", default=None, help="also write every run as a TREC file here")
    ap.add_argument("--json", default=None)
    ap.add_argument("--disjoint", action="store_true",
                    help="also compare on the test queries whose relevant documents no training query shares")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from rankstack import Collection, Context, compare, parse_pipeline
    from rankstack.retrieve.fusion import fuse_runs

    models = dict(m.split("=", 1) for m in args.model)
    models.update({qe.split("=", 1)[0]: "qe:" + qe.split("=", 1)[0] for qe in args.query_encoder})
    pipelines = {"bm25": "bm25(k1=0.9, b=0.4)", "minilm": "dense(encoder='minilm')", **models}
    report = {"cpu": cpu_name(), "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
              "collections": {}}
    print(f"CPU: {report['cpu']}; {report['uptime']}")
    for cname in args.collection or ["scifact"]:
        coll = Collection(cname, data_root=args.data_root)
        queries, qrels = coll.queries(args.split), coll.qrels(args.split)
        ctx = Context(collection=coll, cache_dir=Path(args.cache_dir))
        runs, seconds = {}, {}
        for qe in args.query_encoder:
            name, folder = qe.split("=", 1)
            ctx.extras[f"qe:{name}"] = query_side_retriever(coll, folder, args.cache_dir)
        for name, spec in pipelines.items():
            start = time.perf_counter()
            if spec.startswith("qe:"):
                runs[name] = (ctx.extras[spec] % 1000)(queries).replace(name=name)
            else:
                runs[name] = (parse_pipeline(spec, ctx) % 1000)(queries).replace(name=name)
            seconds[name] = round(time.perf_counter() - start, 1)
            if args.runs_dir:
                from rankstack.data.trec import write_run

                Path(args.runs_dir).mkdir(parents=True, exist_ok=True)
                write_run(runs[name], Path(args.runs_dir) / f"{cname}-{name.replace(',', '+')}.run")
        for name in ["minilm", *args.fuse]:  # the two hybrids of examples/scifact.toml, over depth-1000 runs
            pair = [runs["bm25"], runs[name]]
            runs[f"rrf(bm25,{name})"] = fuse_runs(pair, method="rrf", k=60).replace(name=f"rrf(bm25,{name})")
            runs[f"z(bm25,{name})"] = fuse_runs(pair, method="combsum", norm="z-score").replace(name=f"z(bm25,{name})")
        comp = compare(runs, qrels, ["nDCG@10", "AP", "R@100"], baseline="bm25")
        print(f"\n== {cname} ({args.split}, {len(queries)} queries)")
        print(comp.to_text())
        alone = {n: r for n, r in runs.items() if n not in ("bm25",) and not n.startswith(("rrf(", "z("))}
        vs_minilm = compare(alone, qrels, ["nDCG@10", "AP", "R@100"], baseline="minilm")
        print(f"\n== {cname}: trained retrievers vs the untrained MiniLM")
        print(vs_minilm.to_text())
        fused = {n: r for n, r in runs.items() if n.startswith("z(")}
        if len(fused) > 1:
            print(f"\n== {cname}: z-score hybrids vs today's (BM25 + untrained MiniLM)")
            print(compare(fused, qrels, ["nDCG@10", "AP", "R@100"], baseline="z(bm25,minilm)").to_text())
        print("seconds (encoding included on a cache miss):", seconds)
        report["collections"][cname] = {"comparison": comp.to_dict(), "vs_minilm": vs_minilm.to_dict(),
                                        "seconds": seconds, "pipelines": pipelines}
        if args.disjoint:
            keep = disjoint_queries(coll, args.split)
            sub = {n: r.restrict(keep) for n, r in runs.items()}
            dis = compare(sub, qrels.restrict(keep), ["nDCG@10", "AP", "R@100"], baseline="bm25")
            print(f"\n== {cname}: the {len(keep)} {args.split} queries whose relevant documents no training query shares")
            print(dis.to_text())
            report["collections"][cname]["disjoint"] = {"queries": len(keep), "comparison": dis.to_dict()}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
