"""CUR search (ANNCUR / ADACUR): exact recovery on exactly low-rank scores, adaptive rounds beating one-shot
anchors at equal budget, exact budget accounting, bad budgets, and the anchor-index artefact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rankstack.errors import InputError
from rankstack.rerank.base import PairScorer
from rankstack.rerank.cur import CURSearch, approximate_scores, round_sizes
from rankstack.rerank.cur_index import AnchorIndex
from rankstack.types import Queries, Run


class MatrixScorer(PairScorer):
    """A fake cross-encoder: the score of (query ``qi``, document ``dj``) is ``Q[i] @ D[j]``; counts every pair."""

    identity = "matrix-scorer"

    def __init__(self, qvec: np.ndarray, dvec: np.ndarray, **kw):
        self.qvec, self.dvec = qvec, dvec
        docs = {f"d{j}": f"d{j}" for j in range(len(dvec))}
        super().__init__(documents=docs, batch_size=7, **kw)
        self.pairs: list[tuple[str, str]] = []
        self.calls_per_score: list[int] = []

    def score_pairs(self, query_texts, doc_texts):
        self.pairs += list(zip(query_texts, doc_texts))
        return np.array([self.qvec[int(q[1:])] @ self.dvec[int(d[1:])] for q, d in zip(query_texts, doc_texts)])

    def score(self, query_texts, doc_texts):
        self.calls_per_score.append(len(query_texts))
        return super().score(query_texts, doc_texts)

    def exact(self, qi: int) -> np.ndarray:
        return self.dvec @ self.qvec[qi]


def make_problem(n_queries: int, n_docs: int, rank: int, n_anchor: int, seed: int = 0, decay: float = 0.0):
    """Queries 0..n_anchor-1 are anchors, the rest are test queries; ``decay`` > 0 spreads the spectrum."""
    rng = np.random.default_rng(seed)
    scale = np.exp(-decay * np.arange(rank))
    qvec = rng.normal(size=(n_queries, rank)) * scale
    dvec = rng.normal(size=(n_docs, rank))
    scorer = MatrixScorer(qvec, dvec)
    anchors = Queries(tuple(f"a{i}" for i in range(n_anchor)), tuple(f"q{i}" for i in range(n_anchor)))
    docids = [f"d{j}" for j in range(n_docs)]
    index = AnchorIndex.build(scorer, anchors, docids, docids)
    scorer.pairs.clear()
    scorer.calls_per_score.clear()
    tests = Queries(tuple(f"t{i}" for i in range(n_anchor, n_queries)),
                    tuple(f"q{i}" for i in range(n_anchor, n_queries)))
    return scorer, index, tests


def top_ids(run: Run, qid: str, k: int) -> list[str]:
    return [str(d) for d in run.for_query(qid)[0][:k]]


def exact_top(scorer: MatrixScorer, qtext: str, k: int, among: list[int] | None = None) -> list[str]:
    s = scorer.exact(int(qtext[1:]))
    ids = np.arange(len(s)) if among is None else np.asarray(among)
    return [f"d{j}" for j in ids[np.argsort(-s[ids])[:k]]]


def recall(run: Run, scorer: MatrixScorer, queries: Queries, k: int = 10) -> float:
    return float(np.mean([len(set(top_ids(run, q, k)) & set(exact_top(scorer, t, k))) / k for q, t in queries]))


# --------------------------------------------------------------------------------------------
def test_round_sizes_split_the_budget_and_refuse_bad_budgets():
    assert round_sizes(50, 5) == [10, 10, 10, 10, 10]
    assert round_sizes(52, 5) == [10, 11, 11, 10, 10]
    assert round_sizes(30, 2, anchors=12) == [12, 18]
    assert round_sizes(7, 1) == [7]
    assert sum(round_sizes(101, 7, anchors=20)) == 101
    for bad in (dict(budget=0, rounds=1), dict(budget=3, rounds=5), dict(budget=10, rounds=2, anchors=10),
                dict(budget=10, rounds=3, anchors=9), dict(budget=True, rounds=1), dict(budget=10, rounds=0),
                dict(budget=10, rounds=2, anchors=0), dict(budget=10, rounds=1, anchors=4), dict(budget=2.5, rounds=1)):
        with pytest.raises(InputError, match="cur: "):
            round_sizes(**bad)


def test_approximation_is_exact_on_rank_r_scores_with_r_anchors():
    rng = np.random.default_rng(1)
    u, v = rng.normal(size=(8, 4)), rng.normal(size=(300, 4))
    r = u @ v.T                      # anchor queries x items, rank 4
    q = rng.normal(size=4) @ v.T     # a new query's exact scores
    items = rng.choice(300, size=4, replace=False)
    np.testing.assert_allclose(approximate_scores(q[items], r[:, items], r), q, rtol=1e-8, atol=1e-8)
    # three anchor items cannot pin down a rank-4 query: the approximation is then wrong
    assert np.abs(approximate_scores(q[items[:3]], r[:, items[:3]], r) - q).max() > 1e-3


@pytest.mark.parametrize("method", ["anncur", "adacur", "adacur-softmax"])
def test_exact_top10_over_the_whole_corpus_with_rank_many_anchors(method):
    rank = 6
    scorer, index, tests = make_problem(n_queries=26, n_docs=400, rank=rank, n_anchor=rank + 2)
    opts = {"anncur": dict(rounds=2, anchors=rank + 2), "adacur": dict(rounds=4),
            "adacur-softmax": dict(rounds=4, strategy="softmax", temperature=0.01)}[method]
    stage = CURSearch(scorer, index, budget=rank + 2 + 12, items="corpus", **opts)
    run = stage(tests)
    for qid, text in tests:
        assert top_ids(run, qid, 10) == exact_top(scorer, text, 10)
        np.testing.assert_allclose(run.for_query(qid)[1][:10],
                                   np.sort(scorer.exact(int(text[1:])))[::-1][:10])  # exact CE scores
    assert stage.last_stats["ce_calls"] == len(tests) * (rank + 14) == len(scorer.pairs)


def test_candidate_mode_recovers_the_exhaustive_rerank_and_keeps_the_tail():
    rank = 5
    scorer, index, tests = make_problem(n_queries=17, n_docs=300, rank=rank, n_anchor=rank + 1, seed=3)
    rng = np.random.default_rng(0)
    cands = {q: rng.choice(300, size=60, replace=False) for q in tests.qids}
    first = Run.from_dict({q: {f"d{j}": float(60 - i) for i, j in enumerate(c)} for q, c in cands.items()},
                          queries=tests, name="bm25")
    run = CURSearch(scorer, index, budget=rank + 1 + 10, rounds=3)(first)
    assert run.name == "bm25 >> adacur(budget=16, rounds=3)"
    for qid, text in tests:
        assert top_ids(run, qid, 10) == exact_top(scorer, text, 10, among=list(cands[qid]))
        docs = run.for_query(qid)[0]
        assert sorted(docs.tolist()) == sorted(f"d{j}" for j in cands[qid])  # every candidate kept
    assert run.metadata["cur"]["ce_calls"] == len(tests) * 16


def test_adaptive_rounds_beat_one_shot_anchors_at_equal_budget():
    # rank 30 scores with a decaying spectrum, 12 anchor queries: the approximation is only rough, so
    # which items get scored matters; ADACUR spends later rounds near the query's top.
    scorer, index, tests = make_problem(n_queries=72, n_docs=1000, rank=30, n_anchor=12, seed=5, decay=0.12)
    budget = 60
    one_shot = CURSearch(scorer, index, budget=budget, rounds=2, anchors=budget // 2, items="corpus", init="random")
    adaptive = CURSearch(scorer, index, budget=budget, rounds=6, items="corpus", init="random")
    random_only = CURSearch(scorer, index, budget=budget, rounds=1, items="corpus", init="random")
    r_one, r_ada, r_rand = (recall(s(tests), scorer, tests) for s in (one_shot, adaptive, random_only))
    assert r_rand < r_one < r_ada
    assert r_ada - r_one > 0.05
    assert one_shot.last_stats["ce_calls"] == adaptive.last_stats["ce_calls"] == budget * len(tests)


def test_softmax_explores_deterministically_per_seed():
    scorer, index, tests = make_problem(n_queries=20, n_docs=300, rank=8, n_anchor=6, seed=4)
    runs = [CURSearch(scorer, index, budget=30, rounds=3, items="corpus", strategy="softmax", seed=s)(tests)
            for s in (0, 0, 1)]
    topk = CURSearch(scorer, index, budget=30, rounds=3, items="corpus")(tests)
    sets = [{(q, str(d)) for q, d in zip(r.qids, r.docids)} for r in (*runs, topk)]
    assert sets[0] == sets[1] and sets[0] != sets[2] and sets[0] != sets[3]


def test_budget_accounting_is_exact_and_no_pair_is_scored_twice():
    scorer, index, tests = make_problem(n_queries=10, n_docs=50, rank=4, n_anchor=5, seed=2)
    short = {"t5": [f"d{j}" for j in range(8)]}                      # fewer candidates than the budget
    long = {q: [f"d{j}" for j in range(40)] for q in tests.qids if q != "t5"}
    first = Run.from_dict({q: {d: 1.0 / (i + 1) for i, d in enumerate(ds)} for q, ds in {**short, **long}.items()},
                          queries=tests)
    stage = CURSearch(scorer, index, budget=23, rounds=4)
    run = stage(first)
    per_query: dict[str, int] = {}
    for q, _ in scorer.pairs:
        per_query[q] = per_query.get(q, 0) + 1
    assert per_query["q5"] == 8 and all(per_query[f"q{i}"] == 23 for i in range(6, 10))
    assert len(set(scorer.pairs)) == len(scorer.pairs)               # never the same pair twice
    assert stage.last_stats["ce_calls"] == len(scorer.pairs) == 8 + 4 * 23
    assert scorer.calls_per_score == [5 * 5, 3 + 4 * 6, 4 * 6, 4 * 6]  # one batched call per round; t5 runs out
    assert run.metadata["cur"]["round_sizes"] == [5, 6, 6, 6]


def test_bad_inputs_are_input_errors(tmp_path):
    scorer, index, tests = make_problem(n_queries=8, n_docs=30, rank=3, n_anchor=4)
    with pytest.raises(InputError, match="budget 3 is smaller than rounds 5"):
        CURSearch(scorer, index, budget=3, rounds=5)
    with pytest.raises(InputError, match="unknown strategy"):
        CURSearch(scorer, index, budget=10, strategy="greedy")
    with pytest.raises(InputError, match="reranks a Run"):
        CURSearch(scorer, index, budget=10, rounds=2)(tests)
    with pytest.raises(InputError, match="init='first_stage' needs a first-stage run"):
        CURSearch(scorer, index, budget=10, rounds=2, items="corpus", init="first_stage")(tests)
    foreign = Run.from_dict({"t4": {"d1": 2.0, "zz9": 1.0}}, queries=tests)
    with pytest.raises(InputError, match="document 'zz9' is not in the CUR anchor index"):
        CURSearch(scorer, index, budget=2, rounds=2)(foreign)
    other = AnchorIndex(index.scores, index.docids, index.anchor_qids, index.anchor_texts, "another-model")
    with pytest.raises(InputError, match="computed with 'another-model'"):
        CURSearch(scorer, other, budget=4, rounds=2)


def test_anchor_index_round_trip_and_refusals(tmp_path: Path):
    scorer, index, _ = make_problem(n_queries=6, n_docs=20, rank=3, n_anchor=4)
    index.save(tmp_path / "idx")
    back = AnchorIndex.load(tmp_path / "idx")
    np.testing.assert_array_equal(back.scores, index.scores)
    assert back.docids.tolist() == index.docids.tolist() and back.anchor_texts == index.anchor_texts
    assert back.model_id == "matrix-scorer" and back.scores.dtype == np.float32
    assert json.loads((tmp_path / "idx" / "manifest.json").read_text())["kind"] == "cur-anchor-index"
    with pytest.raises(InputError):                        # the same kind is not replaced without overwrite
        index.save(tmp_path / "idx")
    index.save(tmp_path / "idx", overwrite=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(InputError):                        # never over a folder that is not an index
        index.save(tmp_path / "other", overwrite=True)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
    raw = bytearray((tmp_path / "idx" / "scores.npy").read_bytes())
    raw[-1] ^= 0xFF
    (tmp_path / "idx" / "scores.npy").write_bytes(bytes(raw))
    with pytest.raises(InputError, match="checksum"):
        AnchorIndex.load(tmp_path / "idx")


def test_k_cuts_or_extends_with_approximate_scores_below_the_scored_items():
    rank = 4
    scorer, index, tests = make_problem(n_queries=9, n_docs=120, rank=rank, n_anchor=rank + 1, seed=6)
    short = CURSearch(scorer, index, budget=12, rounds=3, items="corpus", k=3)(tests)
    longer = CURSearch(scorer, index, budget=12, rounds=3, items="corpus", k=30)(tests)
    for qid, text in tests:
        assert top_ids(short, qid, 3) == exact_top(scorer, text, 3) and len(short.for_query(qid)[0]) == 3
        docs, scores = longer.for_query(qid)
        # 4 random anchors pin the rank-4 scores down; the next two rounds score the true top 8
        assert len(docs) == 30 and top_ids(longer, qid, 8) == exact_top(scorer, text, 8)
        # the 18 unscored rows sit below every scored one, in the (here exact) approximate order
        assert scores[12:].max() < scores[:12].min()
        assert [str(d) for d in docs[12:]] == [d for d in exact_top(scorer, text, 120) if d not in set(docs[:12])][:18]
