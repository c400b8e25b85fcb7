"""Cross-encoder k-NN search by CUR matrix factorisation: ANNCUR and its adaptive rounds, ADACUR.

Why: reranking every candidate (or every document) with a cross-encoder costs one model call per
pair. "Efficient Nearest Neighbor Search for Cross-Encoder Models using Matrix Factorization"
(Yadav et al., EMNLP 2022, ANNCUR) approximates a test query's scores on all items from its exact
scores on a few *anchor items* ``I``, through the scores ``R`` (``k_q x N``) of anchor queries on all
items, computed once offline (:mod:`rankstack.rerank.cur_index`)::

    approx = c_test @ pinv(R[:, I]) @ R           (c_test: the query's exact scores on I)

and then spends the rest of the budget on the top items by approximate score. "Efficient k-NN Search
with Cross-Encoders using Adaptive Multi-Round CUR Decomposition" (Yadav et al., Findings of ACL 2023,
ADACUR) spends the budget in rounds instead: after each round the approximation is re-solved on all
items scored so far, and the next round's items are the best not-yet-scored items under it (``topk``)
or a sample from a softmax over it (``softmax``, some exploration). Every item scored is scored
exactly, so the final ranking is the exact cross-encoder order of the scored items; the approximation
only decides *which* items to score. ANNCUR is the same loop with two rounds (``anchors`` items, then
the rest of the budget), which is how :func:`build_anncur` builds it.

As a Stage: over a candidate run (``bm25 % 100 >> adacur(model=M, budget=30)``: items = each query's
candidates, round 1 = the first stage's top items) or over the whole indexed corpus
(``adacur(model=M, budget=100, items='corpus')``, from Queries or after a first stage that only seeds
round 1). The cross-encoder is the rankstack ``CrossEncoderReranker`` (any ``PairScorer`` works); all
queries advance in lock-step so each round is one length-sorted batched ``score`` call, and the
number of cross-encoder calls is counted exactly (``last_stats``, and ``run.metadata["cur"]``).
The per-round least-squares solve is NumPy's ``lstsq`` (min-norm pseudo-inverse solution).
Hand-written loop because no library implements ANNCUR/ADACUR over an arbitrary scorer.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rankstack.errors import InputError
from rankstack.pipeline.stage import Stage, StageInput, queries_of
from rankstack.registry import Context, register
from rankstack.rerank.base import require_bare_pairs
from rankstack.rerank.cur_index import AnchorIndex, index_for_collection, sample_anchor_queries, scorer_identity
from rankstack.types import Run

__all__ = ["CURSearch", "round_sizes", "approximate_scores", "build_adacur", "build_anncur", "STRATEGIES", "INITS",
           "ITEMS"]

log = logging.getLogger(__name__)

STRATEGIES = ("topk", "softmax")
INITS = ("auto", "first_stage", "random")
ITEMS = ("candidates", "corpus")


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"cur: {what} must be a positive integer, got {value!r}")
    return int(value)


def round_sizes(budget: int, rounds: int, anchors: int | None = None) -> list[int]:
    """Items scored in each round: ``anchors`` (default ``budget // rounds``) first, the rest of the
    budget split as evenly as possible over the later rounds (earlier rounds take the remainder)."""
    budget, rounds = _positive_int(budget, "budget"), _positive_int(rounds, "rounds")
    if budget < rounds:
        raise InputError(f"cur: budget {budget} is smaller than rounds {rounds}: each round scores at least "
                         "one item", fix=f"raise budget to >= {rounds} or lower rounds")
    if rounds == 1:
        if anchors is not None and anchors != budget:
            raise InputError(f"cur: with one round the anchors are the whole budget ({budget}), got {anchors}",
                             fix="drop anchors or use rounds >= 2")
        return [budget]
    first = budget // rounds if anchors is None else _positive_int(anchors, "anchors")
    rest = budget - first
    if rest < rounds - 1:
        raise InputError(f"cur: budget {budget} leaves {rest} item(s) after {first} anchor items, fewer than the "
                         f"{rounds - 1} later round(s)",
                         fix=f"raise budget above {first + rounds - 2} or lower anchors/rounds")
    per, extra = divmod(rest, rounds - 1)
    return [first] + [per + (1 if i < extra else 0) for i in range(rounds - 1)]


def approximate_scores(exact: np.ndarray, r_anchor: np.ndarray, r_items: np.ndarray,
                       rcond: float | None = None) -> np.ndarray:
    """CUR approximation ``exact @ pinv(r_anchor) @ r_items`` via least squares.

    ``exact``: the query's scores on the anchor items (``m``); ``r_anchor``: anchor queries x anchor
    items (``k_q x m``); ``r_items``: anchor queries x items (``k_q x n``).
    """
    w, *_ = np.linalg.lstsq(np.asarray(r_anchor, np.float64).T, np.asarray(exact, np.float64), rcond=rcond)
    return w @ np.asarray(r_items, np.float64)


@dataclass
class _Query:
    """One query's search state: its items, what is scored so far, the current approximation."""

    qid: str
    text: str
    docids: np.ndarray          # the items this query searches over
    cols: np.ndarray            # their columns in the anchor matrix
    seed_order: np.ndarray      # item positions in round-1 preference order
    rng: np.random.Generator
    exact: np.ndarray = None    # type: ignore[assignment]  # NaN until scored
    approx: np.ndarray = None   # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.exact = np.full(len(self.docids), np.nan)

    @property
    def scored(self) -> np.ndarray:
        return ~np.isnan(self.exact)


class CURSearch(Stage):
    """Adaptive CUR search (ADACUR; ANNCUR with ``rounds=2``) with a cross-encoder ``scorer``.

    ``budget``: cross-encoder calls per query (capped by the number of items); ``rounds`` and
    ``anchors``: see :func:`round_sizes`. ``items``: ``"candidates"`` (each query's input run) or
    ``"corpus"`` (every item of ``index``). ``init``: round-1 items — ``"first_stage"`` (the input run's
    top), ``"random"``, or ``"auto"`` (first stage when a run arrives, else random). ``strategy``:
    ``"topk"`` or ``"softmax"`` (Gumbel top-k sampling from ``softmax(z / temperature)``, ``z`` the
    z-scored approximation, so the temperature does not depend on the model's score scale).
    ``k``: rows returned per query — scored items first (exact scores), then unscored items by
    approximate score below them; default: every candidate (candidates) or the scored items (corpus).
    """

    def __init__(self, scorer: Any, index: AnchorIndex, budget: int = 100, rounds: int = 5,
                 anchors: int | None = None, items: str = "candidates", init: str = "auto",
                 strategy: str = "topk", temperature: float = 1.0, k: int | None = None, seed: int = 0,
                 rcond: float | None = None, check_model: bool = True, name: str | None = None) -> None:
        self.sizes = round_sizes(budget, rounds, anchors)
        if items not in ITEMS:
            raise InputError(f"cur: unknown items {items!r}", fix=f"choose one of {', '.join(ITEMS)}")
        if init not in INITS:
            raise InputError(f"cur: unknown init {init!r}", fix=f"choose one of {', '.join(INITS)}")
        if strategy not in STRATEGIES:
            raise InputError(f"cur: unknown strategy {strategy!r}", fix=f"choose one of {', '.join(STRATEGIES)}")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
            raise InputError(f"cur: temperature must be a positive number, got {temperature!r}")
        if k is not None:
            k = _positive_int(k, "k")
        if not isinstance(index, AnchorIndex):
            raise InputError(f"cur: index must be an AnchorIndex, got {type(index).__name__}")
        if check_model:
            index.check_model(scorer_identity(scorer))
        self.scorer, self.index = scorer, index
        self.budget, self.rounds, self.anchors = int(budget), int(rounds), anchors
        self.items, self.init, self.strategy = items, init, strategy
        self.temperature, self.k, self.seed, self.rcond = float(temperature), k, int(seed), rcond
        self.name = name or f"adacur(budget={self.budget}, rounds={self.rounds})"
        self.last_stats: dict[str, Any] = {}

    # setting up ---------------------------------------------------------------------------------
    def _rng(self, qid: str) -> np.random.Generator:
        digest = int.from_bytes(hashlib.sha256(qid.encode("utf-8")).digest()[:8], "little")
        return np.random.default_rng([self.seed, digest])  # per query: independent of batch composition

    def _states(self, inp: StageInput) -> list[_Query]:
        queries = queries_of(inp, self.name)
        runs: dict[str, np.ndarray] = {}
        if isinstance(inp, Run):
            runs = {q: d for q, d, _ in inp.groups()}
        elif self.items == "candidates":
            raise InputError(f"{self.name} over candidates reranks a Run, got Queries",
                             fix="put a first stage before it ('bm25 % 100 >> adacur(...)') or pass items='corpus'")
        init = self.init if self.init != "auto" else ("first_stage" if isinstance(inp, Run) else "random")
        if init == "first_stage" and not isinstance(inp, Run):
            raise InputError(f"{self.name}: init='first_stage' needs a first-stage run",
                             fix="put a first stage before it or use init='random'")
        all_cols = np.arange(len(self.index))
        order_q = list(runs) if isinstance(inp, Run) else list(queries.qids)
        states = []
        for qid in order_q:
            run_docs = runs.get(qid, np.array([], dtype=str))
            if self.items == "candidates":
                docids, cols = np.asarray(run_docs).astype(str), self.index.columns(run_docs)
                seed_order = np.arange(len(docids))  # the run arrives in rank order
            else:
                docids, cols = self.index.docids, all_cols
                seed_order = self.index.columns(run_docs) if len(run_docs) else np.array([], dtype=np.int64)
            states.append(_Query(qid, queries[qid], docids, cols, seed_order, self._rng(qid)))
            if init == "random":
                states[-1].seed_order = states[-1].rng.permutation(len(docids))
        return states

    # one round ---------------------------------------------------------------------------------
    def _pick(self, st: _Query, n: int, first_round: bool) -> np.ndarray:
        free = np.flatnonzero(~st.scored)
        n = min(n, len(free))
        if n == 0:
            return free[:0]
        if first_round or st.approx is None:
            order = [i for i in st.seed_order.tolist() if not st.scored[i]][:n]
            if len(order) < n:  # a short first stage in corpus mode: fill at random
                rest = np.setdiff1d(free, order)
                order += st.rng.choice(rest, size=n - len(order), replace=False).tolist()
            return np.asarray(order, dtype=np.int64)
        values = st.approx[free]
        if self.strategy == "softmax":
            sd = values.std()
            z = (values - values.mean()) / (sd if sd > 0 else 1.0)
            values = z / self.temperature + st.rng.gumbel(size=len(values))
        top = np.argsort(-values, kind="stable")[:n]
        return free[top]

    def _update(self, st: _Query) -> None:
        scored = st.scored
        r = self.index.scores
        st.approx = approximate_scores(st.exact[scored], r[:, st.cols[scored]], r[:, st.cols], self.rcond)

    def transform(self, inp: StageInput) -> Run:
        require_bare_pairs(self.scorer, "CUR/ADACUR")
        states = self._states(inp)
        calls = np.zeros(len(states), dtype=np.int64)
        for rnd, size in enumerate(self.sizes):
            picks = [self._pick(st, size, rnd == 0) for st in states]
            pair_q = [st.text for st, p in zip(states, picks) for _ in range(len(p))]
            pair_docs = [str(st.docids[i]) for st, p in zip(states, picks) for i in p]
            if not pair_q:
                break
            scores = self.scorer.score(pair_q, self.scorer.doc_texts(pair_docs))
            pos = 0
            for j, (st, p) in enumerate(zip(states, picks)):
                st.exact[p] = scores[pos:pos + len(p)]
                pos += len(p)
                calls[j] += len(p)
                if len(p):
                    self._update(st)
        return self._output(inp, states, calls)

    def _output(self, inp: StageInput, states: Sequence[_Query], calls: np.ndarray) -> Run:
        qids, docids, values = [], [], []
        for st in states:
            scored = st.scored
            keep = self.k if self.k is not None else (len(st.docids) if self.items == "candidates" else int(scored.sum()))
            ex = st.exact[scored]
            rows_d, rows_s = [st.docids[scored]], [ex]
            n_tail = max(0, min(keep, len(st.docids)) - len(ex))
            if n_tail:
                free = np.flatnonzero(~scored)
                approx = st.approx[free] if st.approx is not None else -np.arange(len(free), dtype=np.float64)
                tail = free[np.argsort(-approx, kind="stable")[:n_tail]]
                floor = ex.min() if len(ex) else 0.0
                rows_d.append(st.docids[tail])
                rows_s.append(floor - 1.0 - np.arange(n_tail, dtype=np.float64))
            d, s = np.concatenate(rows_d), np.concatenate(rows_s)
            if len(ex) > keep:  # k below the budget: keep the best exactly-scored items
                top = np.argsort(-s, kind="stable")[:keep]
                d, s = d[top], s[top]
            qids.append(np.full(len(d), st.qid, dtype=object))
            docids.append(d)
            values.append(s)
        stats = {"ce_calls": int(calls.sum()), "queries": len(states), "budget": self.budget,
                 "rounds": self.rounds, "round_sizes": list(self.sizes),
                 "ce_calls_per_query": float(calls.mean()) if len(calls) else 0.0,
                 "scorer": dict(getattr(self.scorer, "last_stats", {}) or {})}
        self.last_stats = stats
        prev = inp.name if isinstance(inp, Run) else "queries"
        name = f"{prev} >> {self.name}" if isinstance(inp, Run) else self.name
        queries = queries_of(inp, self.name)
        if not qids:
            return Run.empty(name).with_queries(queries).with_metadata(cur=stats)
        out = Run(np.concatenate(qids).astype(str), np.concatenate(docids), np.concatenate(values),
                  name=name, queries=queries)
        meta = dict(inp.metadata) if isinstance(inp, Run) else {}
        return out.replace(metadata={**meta, "cur": stats})


def _cross_encoder(context: Context | None, model: str | None, precision: str, batch_size: int,
                   max_length: int | None, threads: int | None, progress: bool) -> Any:
    from rankstack.rerank.cross_encoder import CrossEncoderReranker

    if model is None:
        raise InputError("adacur needs a cross-encoder model", fix="write adacur(model='MODEL_DIR', budget=...)")
    documents = context.collection if context is not None else None
    return CrossEncoderReranker(model, documents=documents, max_length=max_length, batch_size=batch_size,
                                precision=precision, threads=threads, depth=None, progress=progress)


def _build(context: Context | None, model: str | None, index: str | None, anchor_split: str, anchor_queries: int,
           seed: int, precision: str, batch_size: int, max_length: int | None, threads: int | None, progress: bool,
           **search: Any) -> CURSearch:
    round_sizes(search["budget"], search["rounds"], search["anchors"])  # bad budgets fail before the model loads
    scorer = _cross_encoder(context, model, precision, batch_size, max_length, threads, progress)
    if index is not None:
        anchor_index = AnchorIndex.load(index)
    else:
        if context is None or context.collection is None:
            raise InputError(f"{search['name']} needs a collection (to build its anchor index) or index=FOLDER",
                             fix="pass --collection, or a CUR index folder")
        anchors_q = sample_anchor_queries(context.collection, anchor_split, anchor_queries, seed)
        anchor_index = index_for_collection(scorer, context.collection, anchors_q, context.cache_dir, progress)
    return CURSearch(scorer, anchor_index, seed=seed, **search)


@register("adacur", kind="reranker")
def build_adacur(context: Context | None = None, model: str | None = None, index: str | None = None,
                 budget: int = 100, rounds: int = 5, anchors: int | None = None, items: str = "candidates",
                 init: str = "auto", strategy: str = "topk", temperature: float = 1.0, k: int | None = None,
                 anchor_split: str = "train", anchor_queries: int = 50, seed: int = 0,
                 rcond: float | None = None, precision: str = "auto", batch_size: int = 16,
                 max_length: int | None = None, threads: int | None = None, progress: bool = False) -> CURSearch:
    """ADACUR over a candidate run or the whole corpus: ``bm25 % 100 >> adacur(model='DIR', budget=30)``.

    ``index``: a saved CUR index folder; otherwise ``anchor_queries`` queries of ``anchor_split`` are
    scored against every document of the context's collection (``anchor_queries x N`` cross-encoder
    calls, once: cached by content in the context's cache folder).
    """
    return _build(context, model, index, anchor_split, anchor_queries, seed, precision, batch_size, max_length,
                  threads, progress, budget=budget, rounds=rounds,
                  anchors=anchors, items=items, init=init, strategy=strategy, temperature=temperature, k=k,
                  rcond=rcond, name=f"adacur(budget={budget}, rounds={rounds})")


@register("anncur", kind="reranker")
def build_anncur(context: Context | None = None, model: str | None = None, index: str | None = None,
                 budget: int = 100, anchors: int | None = None, items: str = "candidates", init: str = "random",
                 k: int | None = None, anchor_split: str = "train", anchor_queries: int = 50, seed: int = 0,
                 rcond: float | None = None, precision: str = "auto", batch_size: int = 16,
                 max_length: int | None = None, threads: int | None = None, progress: bool = False) -> CURSearch:
    """ANNCUR: ``anchors`` items (default half the budget; random by default, as in the paper), then the
    rest of the budget on the best items by approximate score (ADACUR with two rounds)."""
    return _build(context, model, index, anchor_split, anchor_queries, seed, precision, batch_size, max_length,
                  threads, progress, budget=budget, rounds=2, anchors=anchors,
                  items=items, init=init, strategy="topk", k=k, rcond=rcond, name=f"anncur(budget={budget})")
