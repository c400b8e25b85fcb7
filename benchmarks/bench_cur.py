"""CUR / ADACUR cross-encoder k-NN search on scifact (results and commands: benchmarks/cur.md).

    python benchmarks/bench_cur.py speed  --model DIR                       # CE pairs/s (size the matrix)
    python benchmarks/bench_cur.py matrix --model DIR --anchors 30 --tests 20 --time-budget 40
    python benchmarks/bench_cur.py search --model DIR                        # tables from the cached matrix
    python benchmarks/bench_cur.py e2e    --model DIR --tests 10             # wall time with the real CE

``matrix`` computes exact cross-encoder scores of anchor queries (scifact *train*, a seeded sample) and test
queries (scifact *test*, a seeded sample) against all 5,183 documents, one row per query, each row saved
as it completes (so a time budget just yields fewer rows); rows alternate anchor/test. ``search`` then
runs the real ``CURSearch`` Stage with a scorer that *looks up* those exact scores (and counts every
call), so quality and CE-call counts are what the cross-encoder itself would give, without recomputing;
``e2e`` runs the Stage with the live cross-encoder to time it. Metrics per query subset: overlap of the
top-10 with the exhaustive CE top-10 (over BM25's top 100, or over the whole corpus), and nDCG@10.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from rankstack.data.beir import Collection  # noqa: E402
from rankstack.evaluate import evaluate  # noqa: E402
from rankstack.registry import Context, build  # noqa: E402
from rankstack.rerank.base import PairScorer  # noqa: E402
from rankstack.rerank.cur import CURSearch  # noqa: E402
from rankstack.rerank.cur_index import AnchorIndex  # noqa: E402
from rankstack.storage import atomic_write_bytes  # noqa: E402
from rankstack.types import Queries, Run  # noqa: E402

OUT = Path(".cache/cur_bench")
CACHE = Path(".cache/rankstack")


def default_model() -> str:
    return ".cache/models/ce-scifact" if Path(".cache/models/ce-scifact/manifest.json").is_file() else "minilm"


def reranker(args, coll):
    from rankstack.rerank.cross_encoder import CrossEncoderReranker

    return CrossEncoderReranker(args.model, documents=coll, precision=args.precision, batch_size=args.batch_size,
                                threads=args.threads, depth=None)


def sample(queries: Queries, seed: int) -> Queries:
    """A seeded permutation: any prefix is a uniform random subset."""
    perm = np.random.default_rng(seed).permutation(len(queries))
    return Queries(tuple(queries.qids[i] for i in perm), tuple(queries.texts[i] for i in perm))


def bm25_run(coll: Collection, queries: Queries, k: int) -> Run:
    ctx = Context(collection=coll, cache_dir=CACHE)
    return (build("bm25", "retriever", context=ctx) % k)(queries)


def matrix_dir(args) -> Path:
    if getattr(args, "rows_dir", None) is not None:
        return args.rows_dir
    key = hashlib.sha256(f"{args.model_id}|{args.precision}".encode()).hexdigest()[:12]
    return args.out / f"rows-{key}"


def cmd_speed(args) -> None:
    coll = Collection("scifact")
    q = coll.queries("test").subset(coll.queries("test").qids[:4])
    run = bm25_run(coll, q, 50)
    ce = reranker(args, coll)
    pq, pd = [q[x] for x in run.qids], coll.doc_texts(run.docids)
    ce.score(pq[:16], pd[:16])  # warm-up
    rates = []
    for _ in range(3):
        ce.score(pq, pd)
        rates.append(ce.last_stats["pairs_per_s"])
    print(f"model {args.model} precision {ce.precision_used} max_length {ce.max_length}: "
          f"{len(pq)} BM25 pairs, pairs/s runs {np.round(rates, 1).tolist()} median {np.median(rates):.1f}")


def _rows(args, coll):
    anchors = sample(coll.queries("train"), args.seed)
    tests = sample(coll.queries("test"), args.seed)
    return anchors, tests


def cmd_matrix(args) -> None:
    from rankstack.rerank.cur_index import scorer_identity

    coll = Collection("scifact")
    docs = coll.documents()
    docids = list(docs)
    texts = [docs[d].contents for d in docids]
    ce = reranker(args, coll)
    args.model_id = scorer_identity(ce)
    where = matrix_dir(args)
    where.mkdir(parents=True, exist_ok=True)
    (where / "meta.json").write_text(json.dumps({"model": args.model, "model_id": args.model_id,
                                                 "precision": ce.precision_used, "max_length": ce.max_length,
                                                 "docids_sha": hashlib.sha256("\n".join(docids).encode()).hexdigest()}))
    anchors, tests = _rows(args, coll)
    order = []
    for i in range(max(args.anchors, args.tests)):
        if i < args.anchors:
            order.append(("anchor", anchors.qids[i], anchors.texts[i]))
        if i < args.tests:
            order.append(("test", tests.qids[i], tests.texts[i]))
    start = time.time()
    for kind, qid, text in order:
        path = where / f"{kind}-{qid}.npy"
        if path.is_file():
            continue
        if time.time() - start > args.time_budget * 60:
            print(f"time budget reached before {kind} {qid}", flush=True)
            break
        t = time.time()
        row = ce.score([text] * len(texts), texts).astype(np.float32)
        import io

        buf = io.BytesIO()
        np.save(buf, row, allow_pickle=False)
        atomic_write_bytes(path, buf.getvalue())
        print(f"{kind} {qid}: {len(texts)} pairs in {time.time() - t:.0f}s "
              f"({len(texts) / (time.time() - t):.1f} pairs/s)", flush=True)


class LookupScorer(PairScorer):
    """Exact CE scores read from the precomputed matrix; counts every (query, document) call."""

    def __init__(self, rows: dict[str, np.ndarray], docids: list[str], coll: Collection, identity: str):
        super().__init__(documents=coll, depth=None, batch_size=4096, sort_by_length=False)
        self.rows, self.identity, self.calls = rows, identity, 0
        docs = coll.documents()
        self.col = {docs[d].contents: j for j, d in enumerate(docids)}

    def score_pairs(self, query_texts, doc_texts):
        self.calls += len(query_texts)
        return np.array([self.rows[q][self.col[d]] for q, d in zip(query_texts, doc_texts)], dtype=np.float64)


def load_matrix(args, coll):
    meta = json.loads((matrix_dir(args) / "meta.json").read_text())
    docids = list(coll.documents())
    anchors, tests = _rows(args, coll)
    a_rows = [(q, t, matrix_dir(args) / f"anchor-{q}.npy") for q, t in zip(anchors.qids, anchors.texts)]
    t_rows = [(q, t, matrix_dir(args) / f"test-{q}.npy") for q, t in zip(tests.qids, tests.texts)]
    a_rows = [(q, t, np.load(p)) for q, t, p in a_rows if p.is_file()][: args.anchors]
    t_rows = [(q, t, np.load(p)) for q, t, p in t_rows if p.is_file()][: args.tests]
    return meta, docids, a_rows, t_rows


def overlap_at(run: Run, exact: dict[str, list[str]], k: int = 10) -> float:
    got = {q: [str(x) for x in d[:k]] for q, d, _ in run.groups()}
    return float(np.mean([len(set(got.get(q, [])) & set(e[:k])) / k for q, e in exact.items()]))


def exact_run(rows: dict[str, np.ndarray], tests: Queries, docids: list[str], among: dict[str, list[str]] | None,
              name: str) -> Run:
    out = {}
    pos = {d: j for j, d in enumerate(docids)}
    for qid, text in tests:
        ids = among[qid] if among is not None else docids
        out[qid] = {d: float(rows[text][pos[d]]) for d in ids}
    return Run.from_dict(out, name=name, queries=tests)


def cmd_search(args) -> None:
    coll = Collection("scifact")
    meta, docids, a_rows, t_rows = load_matrix(args, coll)
    print(f"matrix: model {meta['model']} ({meta['precision']}, max_length {meta['max_length']}); "
          f"{len(a_rows)} anchor queries (train), {len(t_rows)} test queries x {len(docids)} documents")
    index = AnchorIndex(np.stack([r for _, _, r in a_rows]), np.asarray(docids), tuple(q for q, _, _ in a_rows),
                        tuple(t for _, t, _ in a_rows), "lookup")
    rows = {t: r for _, t, r in t_rows}
    tests = Queries(tuple(q for q, _, _ in t_rows), tuple(t for _, t, _ in t_rows))
    qrels = coll.qrels("test").restrict(tests.qids)
    scorer = LookupScorer(rows, docids, coll, "lookup")
    bm25 = bm25_run(coll, tests, 1000)
    results = {"meta": meta, "n_anchor_queries": len(a_rows), "n_test_queries": len(t_rows), "tables": {}}

    def ndcg(run: Run) -> float:
        return float(evaluate(run, qrels, ["nDCG@10"]).mean["nDCG@10"])

    for mode in ("bm25-top100", "corpus"):
        among = {q: [str(x) for x in d] for q, d, _ in bm25.top_k(100).groups()} if mode == "bm25-top100" else None
        ex = exact_run(rows, tests, docids, among, "exhaustive")
        exact_top = {q: [str(x) for x in d[:10]] for q, d, _ in ex.groups()}
        n_items = 100 if among else len(docids)
        budgets = args.budgets_top100 if among else args.budgets_corpus
        print(f"\n== {mode}: exhaustive CE = {n_items} calls/query, nDCG@10 {ndcg(ex):.4f} "
              f"(BM25 {ndcg(bm25):.4f}) ==")
        print(f"{'method':<34}" + "".join(f"{b:>8}" for b in budgets) + "   (overlap@10 with exhaustive | nDCG@10)")
        table = {"exhaustive_ndcg10": ndcg(ex), "bm25_ndcg10": ndcg(bm25), "calls_exhaustive": n_items, "rows": {}}
        first = bm25.top_k(100) if among else bm25
        methods = {
            "rerank BM25 top-B": None,
            "ANNCUR (B/2 random anchors)": dict(rounds=2, init="random"),
            "ADACUR r=5 random init": dict(rounds=5, init="random"),
            "ADACUR r=5 BM25 init": dict(rounds=5, init="first_stage"),
            "ADACUR r=10 BM25 init": dict(rounds=10, init="first_stage"),
        }
        for label, kw in methods.items():
            ov, nd = [], []
            for b in budgets:
                if kw is None:
                    top = bm25.top_k(b)
                    run = exact_run(rows, tests, docids, {q: [str(x) for x in d] for q, d, _ in top.groups()}, "rr")
                else:
                    stage = CURSearch(scorer, index, budget=b, items="candidates" if among else "corpus",
                                      check_model=False, **kw)
                    scorer.calls = 0
                    run = stage(first)
                    assert scorer.calls == stage.last_stats["ce_calls"] <= b * len(tests)
                ov.append(overlap_at(run, exact_top))
                nd.append(ndcg(run))
            table["rows"][label] = {"budgets": list(budgets), "overlap10": ov, "ndcg10": nd}
            print(f"{label:<34}" + "".join(f"{o:>8.3f}" for o in ov))
            print(f"{'':<34}" + "".join(f"{n:>8.4f}" for n in nd))
        results["tables"][mode] = table
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"search-{meta['model_id'][:40].replace(':', '_').replace('/', '_')}.json"
    out.write_text(json.dumps(results, indent=1))
    print(f"\nwritten {out}")


def cmd_e2e(args) -> None:
    """Wall time of the live Stage vs reranking all 100 BM25 candidates, same CE, same queries."""
    from rankstack.rerank.cur_index import scorer_identity

    coll = Collection("scifact")
    ce = reranker(args, coll)
    args.model_id = scorer_identity(ce)
    _, docids, a_rows, _ = load_matrix(args, coll)
    index = AnchorIndex(np.stack([r for _, _, r in a_rows]), np.asarray(docids), tuple(q for q, _, _ in a_rows),
                        tuple(t for _, t, _ in a_rows), args.model_id)
    tests = sample(coll.queries("test"), args.seed + 1)
    tests = tests.subset(tests.qids[: args.tests])
    first = bm25_run(coll, tests, 100)
    qrels = coll.qrels("test").restrict(tests.qids)
    for label, stage in (("rerank all 100", ce), (f"ADACUR budget {args.budget}",
                                                  CURSearch(ce, index, budget=args.budget, rounds=5))):
        t = time.time()
        run = stage(first)
        took = time.time() - t
        print(f"{label}: {took:.1f}s for {len(tests)} queries, nDCG@10 "
              f"{evaluate(run, qrels, ['nDCG@10']).mean['nDCG@10']:.4f}", flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cmd", choices=("speed", "matrix", "search", "e2e"))
    p.add_argument("--model", default=default_model())
    p.add_argument("--precision", default="bf16-weights")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--anchors", type=int, default=30)
    p.add_argument("--tests", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-budget", type=float, default=40.0, help="minutes (matrix)")
    p.add_argument("--budget", type=int, default=30, help="e2e: ADACUR budget over BM25 top 100")
    p.add_argument("--budgets-top100", type=int, nargs="+", default=[10, 15, 20, 30, 40, 50, 70, 100])
    p.add_argument("--budgets-corpus", type=int, nargs="+", default=[50, 100, 200, 300, 500, 1000])
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    args.rows_dir = None
    if args.cmd == "search":  # find the matrix of this model without loading it
        from rankstack.rerank.cross_encoder import base_model_path
        from rankstack.storage import fingerprint

        prefix = f"cross-encoder:{fingerprint(base_model_path(args.model))[:16]}"
        match = [c.parent for c in sorted(args.out.glob("rows-*/meta.json"))
                 if json.loads(c.read_text())["model_id"].startswith(prefix)]
        if not match:
            sys.exit(f"no matrix for {args.model} under {args.out}: run 'matrix' first")
        args.rows_dir = match[0]
    {"speed": cmd_speed, "matrix": cmd_matrix, "search": cmd_search, "e2e": cmd_e2e}[args.cmd](args)


if __name__ == "__main__":
    main()
