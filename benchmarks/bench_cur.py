"""CUR / ADACUR cross-encoder k-NN search on scifact (results and commands: benchmarks/cur.md).

    python benchmarks/bench_cur.py speed  --model DIR                         # CE pairs/s (size the matrix)
    python benchmarks/bench_cur.py matrix --model DIR --universe top100 --anchors 30 --tests 20 --time-budget 30
    python benchmarks/bench_cur.py search --model DIR --universe top100 --anchors 30 --tests 20
    python benchmarks/bench_cur.py matrix --model DIR --universe corpus --anchors 10 --tests 5 --time-budget 40
    python benchmarks/bench_cur.py e2e    --model DIR --universe top100 --tests 20 --budget 30

``matrix`` computes exact cross-encoder scores of anchor queries (scifact *train*, a seeded sample) and
test queries (scifact *test*, a seeded sample) against the items of a universe, one row per query, each
row saved as it completes (a time budget just yields fewer rows). Universe ``top100``: the union of BM25's
top 100 of the test queries (anchor rows over all of it, test rows over their own 100 candidates);
``corpus``: all 5,183 documents (rows alternate anchor/test). ``search`` then runs the real ``CURSearch``
Stage with a scorer that *looks up* those exact scores (and counts every call), so quality and CE-call
counts are what the cross-encoder itself gives, without recomputing it per setting; ``e2e`` runs the
Stage with the live cross-encoder to time it. Metrics over the test subset: overlap of the top-10 with
the exhaustive CE top-10 (over BM25's top 100, or over the whole corpus), and nDCG@10.
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


def universe(args, coll: Collection) -> tuple[str, list[str], dict[str, list[str]]]:
    """The items of the matrix: every document ('corpus'), or the union of BM25's top 100 of the first
    ``--tests`` test queries ('top100': enough for search over BM25 candidates, ~20x cheaper); and those
    BM25 top-100 lists, stored with the matrix (BM25 itself may change while this benchmark runs)."""
    _, tests = _rows(args, coll)
    run = bm25_run(coll, tests.subset(tests.qids[: args.tests]), 100)
    cands = {q: [str(x) for x in d] for q, d, _ in run.groups()}
    if args.universe == "corpus":
        return "corpus", list(coll.documents()), cands
    return f"top100-t{args.tests}", sorted({d for ds in cands.values() for d in ds}), cands


def matrix_dir(args, name: str) -> Path:  # the model's content id + precision + universe
    key = hashlib.sha256(f"{args.model_id}|{args.precision}".encode()).hexdigest()[:12]
    return args.out / f"rows-{key}-{name}"


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


def _save_row(path: Path, row: np.ndarray) -> None:
    import io

    buf = io.BytesIO()
    np.save(buf, row.astype(np.float32), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def cmd_matrix(args) -> None:
    """Rows of exact CE scores, each saved as it completes; tests first in 'top100' (cheap), else interleaved."""
    from rankstack.rerank.cur_index import scorer_identity

    coll = Collection("scifact")
    docs = coll.documents()
    name, docids, bm25_top = universe(args, coll)
    ce = reranker(args, coll)
    args.model_id = scorer_identity(ce)
    where = matrix_dir(args, name)
    if (where / "meta.json").is_file():  # resume: the items and candidates of the rows already there
        meta = json.loads((where / "meta.json").read_text())
        docids, bm25_top = meta["docids"], meta["bm25_top100"]
    else:
        where.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(where / "meta.json", json.dumps({
            "model": args.model, "model_id": args.model_id, "precision": ce.precision_used,
            "max_length": ce.max_length, "universe": name, "docids": docids, "bm25_top100": bm25_top}).encode())
    texts = [docs[d].contents for d in docids]
    anchors, tests = _rows(args, coll)
    cands = {}
    if name != "corpus":
        pos = {d: j for j, d in enumerate(docids)}
        cands = {q: np.array([pos[d] for d in ds]) for q, ds in bm25_top.items()}
        order = [("test", tests.qids[i], tests.texts[i]) for i in range(args.tests)]
        order += [("anchor", anchors.qids[i], anchors.texts[i]) for i in range(args.anchors)]
        if args.full_tests:  # then the rest of the universe for the test queries: search over all of it
            order += [("testfull", tests.qids[i], tests.texts[i]) for i in range(args.tests)]
    else:
        order = []
        for i in range(max(args.anchors, args.tests)):
            if i < args.anchors:
                order.append(("anchor", anchors.qids[i], anchors.texts[i]))
            if i < args.tests:
                order.append(("test", tests.qids[i], tests.texts[i]))
    if args.only:
        order = [o for o in order if o[0] in args.only.split(",")]
    start = time.time()
    for kind, qid, text in order:
        path = where / f"{kind}-{qid}.npy"
        if path.is_file():
            continue
        if time.time() - start > args.time_budget * 60:
            print(f"time budget reached before {kind} {qid}", flush=True)
            break
        t = time.time()
        cols = cands[qid] if (kind == "test" and cands) else np.arange(len(docids))
        row = np.full(len(docids), np.nan, dtype=np.float32)
        if kind == "testfull":  # reuse the candidates' scores when already computed
            if (where / f"test-{qid}.npy").is_file():
                part = np.load(where / f"test-{qid}.npy")
                row[cands[qid]] = part[cands[qid]]
            cols = np.flatnonzero(np.isnan(row))
        row[cols] = ce.score([text] * len(cols), [texts[j] for j in cols])
        _save_row(path, row)
        print(f"{kind} {qid}: {len(cols)} pairs in {time.time() - t:.0f}s "
              f"({len(cols) / (time.time() - t):.1f} pairs/s)", flush=True)


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


def find_matrix(args, coll: Collection) -> Path:
    """The rows folder of ``--model`` for ``--universe`` (matched by the model's content fingerprint)."""
    from rankstack.rerank.cross_encoder import base_model_path
    from rankstack.storage import fingerprint

    prefix = f"cross-encoder:{fingerprint(base_model_path(args.model))[:16]}"
    name = "corpus" if args.universe == "corpus" else f"top100-t{args.tests}"
    match = [c.parent for c in sorted(args.out.glob(f"rows-*-{name}/meta.json"))
             if json.loads(c.read_text())["model_id"].startswith(prefix)]
    if not match:
        sys.exit(f"no {name} matrix for {args.model} under {args.out}: run 'matrix' first")
    return match[0]


def load_matrix(args, coll: Collection, where: Path):
    meta = json.loads((where / "meta.json").read_text())
    docids = meta["docids"]
    anchors, tests = _rows(args, coll)
    a_rows = [(q, t, where / f"anchor-{q}.npy") for q, t in zip(anchors.qids, anchors.texts)]
    t_rows = [(q, t, where / f"test-{q}.npy") for q, t in zip(tests.qids, tests.texts)]
    a_rows = [(q, t, np.load(p)) for q, t, p in a_rows if p.is_file()][: args.anchors]
    t_rows = [(q, t, np.load(p)) for q, t, p in t_rows if p.is_file()][: args.tests]
    full = [where / f"testfull-{q}.npy" for q, _, _ in t_rows]
    if meta["universe"] != "corpus" and t_rows and all(p.is_file() for p in full):
        t_rows = [(q, t, np.load(p)) for (q, t, _), p in zip(t_rows, full)]
        meta["full_rows"] = True
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
        assert all(np.isfinite(v) for v in out[qid].values()), "a needed score is missing from the matrix"
    return Run.from_dict(out, name=name, queries=tests)


def cmd_search(args) -> None:
    coll = Collection("scifact")
    meta, docids, a_rows, t_rows = load_matrix(args, coll, find_matrix(args, coll))
    tables(args, coll, meta, docids, a_rows, t_rows)


def cmd_proxy(args) -> None:
    """The same tables with the MiniLM *bi-encoder* dot product standing in for the CE (NOT a cross-encoder:
    exactly rank 384): free to compute on the whole corpus for every query (cached document embeddings)."""
    from rankstack.encode.base import cached_encode, load_encoder

    coll = Collection("scifact")
    docs = list(coll.corpus())
    docids = [d.docid for d in docs]
    enc = load_encoder("minilm", precision="auto", threads=1)
    dvec = cached_encode(enc, [d.contents for d in docs], docids, CACHE)
    anchors, tests = _rows(args, coll)
    anchors, tests = anchors.subset(anchors.qids[: args.anchors]), tests.subset(tests.qids[: args.tests])
    avec = enc.encode(list(anchors.texts))
    tvec = enc.encode(list(tests.texts))
    a_rows = [(q, t, (dvec @ v).astype(np.float32)) for q, t, v in zip(anchors.qids, anchors.texts, avec)]
    t_rows = [(q, t, (dvec @ v).astype(np.float32)) for q, t, v in zip(tests.qids, tests.texts, tvec)]
    run = bm25_run(coll, tests, 100)
    meta = {"model": "MiniLM bi-encoder dot product (proxy, not a cross-encoder)", "model_id": "proxy-dense",
            "precision": enc.precision, "max_length": "st default", "universe": "corpus",
            "bm25_top100": {q: [str(x) for x in d] for q, d, _ in run.groups()}}
    tables(args, coll, meta, docids, a_rows, t_rows)


def tables(args, coll, meta, docids, a_rows, t_rows) -> None:
    print(f"matrix: model {meta['model']} ({meta['precision']}, max_length {meta['max_length']}); "
          f"{len(a_rows)} anchor queries (train) x {len(docids)} items ({meta['universe']}), "
          f"{len(t_rows)} test queries")
    index = AnchorIndex(np.stack([r for _, _, r in a_rows]), np.asarray(docids), tuple(q for q, _, _ in a_rows),
                        tuple(t for _, t, _ in a_rows), "lookup")
    rows = {t: r for _, t, r in t_rows}
    tests = Queries(tuple(q for q, _, _ in t_rows), tuple(t for _, t, _ in t_rows))
    qrels = coll.qrels("test").restrict(tests.qids)
    scorer = LookupScorer(rows, docids, coll, "lookup")
    bm25 = bm25_run(coll, tests, 1000)
    top = meta["bm25_top100"]  # exactly the candidates the matrix was built for
    bm25_100 = Run.from_dict({q: {d: float(100 - i) for i, d in enumerate(top[q])} for q in tests.qids},
                             name="bm25", queries=tests)
    results = {"meta": meta, "n_anchor_queries": len(a_rows), "n_test_queries": len(t_rows), "tables": {}}

    def ndcg(run: Run) -> float:
        return float(evaluate(run, qrels, ["nDCG@10"]).mean["nDCG@10"])

    full = meta["universe"] == "corpus" or meta.get("full_rows")
    for mode in (("bm25-top100", "corpus") if full else ("bm25-top100",)):
        among = {q: [str(x) for x in d] for q, d, _ in bm25_100.groups()} if mode == "bm25-top100" else None
        ex = exact_run(rows, tests, docids, among, "exhaustive")
        exact_top = {q: [str(x) for x in d[:10]] for q, d, _ in ex.groups()}
        n_items = 100 if among else len(docids)
        budgets = args.budgets_top100 if among else args.budgets_corpus
        if mode == "corpus" and meta["universe"] != "corpus":
            mode = f"sub-corpus of {len(docids)} docs (union of the test queries' BM25 top 100)"
        print(f"\n== {mode}: exhaustive CE = {n_items} calls/query, nDCG@10 {ndcg(ex):.4f} "
              f"(BM25 {ndcg(bm25):.4f}) ==")
        print(f"{'method':<34}" + "".join(f"{b:>8}" for b in budgets) + "   (overlap@10 with exhaustive | nDCG@10)")
        table = {"exhaustive_ndcg10": ndcg(ex), "bm25_ndcg10": ndcg(bm25), "calls_exhaustive": n_items, "rows": {}}
        if among:
            first = bm25_100
        else:  # BM25 over the matrix's items (all documents, or the sub-corpus)
            inside = np.isin(bm25.docids, np.asarray(docids))
            first = bm25.replace(qids=bm25.qids[inside], docids=bm25.docids[inside], scores=bm25.scores[inside])
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
                    top = first.top_k(b)
                    run = exact_run(rows, tests, docids, {q: [str(x) for x in d] for q, d, _ in top.groups()}, "rr")
                else:
                    stage = CURSearch(scorer, index, budget=b, items="candidates" if among else "corpus",
                                      check_model=False, rcond=args.rcond, **kw)
                    scorer.calls = 0
                    run = stage(first)
                    assert scorer.calls == stage.last_stats["ce_calls"] <= b * len(tests)
                ov.append(overlap_at(run, exact_top))
                nd.append(ndcg(run))
            reach = next((b for b, o in zip(budgets, ov) if o >= 0.95), None)
            table["rows"][label] = {"budgets": list(budgets), "overlap10": ov, "ndcg10": nd, "calls_for_95": reach}
            print(f"{label:<34}" + "".join(f"{o:>8.3f}" for o in ov)
                  + f"   >=0.95 at {reach if reach else '>' + str(budgets[-1])} calls")
            print(f"{'':<34}" + "".join(f"{n:>8.4f}" for n in nd))
        results["tables"][mode] = table
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"search-{meta['model_id'][:30].replace(':', '_')}-{meta['universe']}-a{len(a_rows)}.json"
    out.write_text(json.dumps(results, indent=1))
    print(f"\nwritten {out}")


def cmd_e2e(args) -> None:
    """Wall time of the live Stage vs reranking all 100 BM25 candidates, same CE, same (matrix) test queries."""
    coll = Collection("scifact")
    ce = reranker(args, coll)
    meta, docids, a_rows, t_rows = load_matrix(args, coll, find_matrix(args, coll))
    index = AnchorIndex(np.stack([r for _, _, r in a_rows]), np.asarray(docids), tuple(q for q, _, _ in a_rows),
                        tuple(t for _, t, _ in a_rows), meta["model_id"])
    tests = Queries(tuple(q for q, _, _ in t_rows), tuple(t for _, t, _ in t_rows))
    first = bm25_run(coll, tests, 100)
    qrels = coll.qrels("test").restrict(tests.qids)
    stages = (("rerank all 100", ce), (f"ADACUR budget {args.budget} r=5 BM25 init",
                                       CURSearch(ce, index, budget=args.budget, rounds=5)))
    for label, stage in stages:
        t = time.time()
        run = stage(first)
        took = time.time() - t
        print(f"{label}: {took:.1f}s for {len(tests)} queries ({took / len(tests):.2f} s/query), nDCG@10 "
              f"{evaluate(run, qrels, ['nDCG@10']).mean['nDCG@10']:.4f}", flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cmd", choices=("speed", "matrix", "search", "e2e", "proxy"))
    p.add_argument("--model", default=default_model())
    p.add_argument("--precision", default="bf16-weights")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 ran 3.7x faster than 2 on the loaded machine)")
    p.add_argument("--anchors", type=int, default=30)
    p.add_argument("--tests", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-budget", type=float, default=40.0, help="minutes (matrix)")
    p.add_argument("--budget", type=int, default=30, help="e2e: ADACUR budget over BM25 top 100")
    p.add_argument("--budgets-top100", type=int, nargs="+", default=[10, 15, 20, 30, 40, 50, 70, 100])
    p.add_argument("--budgets-corpus", type=int, nargs="+", default=[50, 100, 200, 300, 500, 1000])
    p.add_argument("--universe", choices=("top100", "corpus"), default="top100",
                   help="matrix items: BM25 top-100 union of the test queries, or the whole corpus")
    p.add_argument("--full-tests", action="store_true",
                   help="top100 universe: after the anchors, score the test queries on the whole universe too")
    p.add_argument("--only", default=None, help="matrix: compute only these row kinds (test,anchor,testfull), e.g. "
                   "to run two single-thread processes side by side")
    p.add_argument("--rcond", type=float, default=None, help="search: least-squares cut-off (numpy lstsq rcond)")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    {"speed": cmd_speed, "matrix": cmd_matrix, "search": cmd_search, "e2e": cmd_e2e, "proxy": cmd_proxy}[args.cmd](args)


if __name__ == "__main__":
    main()
