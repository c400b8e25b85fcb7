"""Measure names (ir_measures syntax) and the NumPy engine that computes them exactly as trec_eval.

Why hand-written instead of calling pytrec_eval: runs of 10^5-10^6 rows stay columnar (no
dict-of-dicts conversion, which dominates pytrec_eval's cost in Python), and the tie rule is explicit
here rather than hidden in C: the ranking is the Run's canonical order -- score descending, ties
broken by docid *descending* -- which is the order trec_eval sorts by. pytrec_eval and ir_measures
are the references this engine is tested against (tests/numerics/test_trec_eval_equality.py).

Semantics (all equal trec_eval 9 unless noted):

* A document is relevant at level ``rel`` (default 1) when its judgement is >= ``rel``; unjudged
  documents are never relevant.
* ``nDCG@k`` (trec_eval ``ndcg_cut.k``) / ``nDCG`` (``ndcg``): gain = the graded label (labels <= 0
  gain 0), discount log2(rank + 1); the ideal ranking is built from *all* judged documents of the
  query (retrieved or not) and cut at the same k.
* ``AP`` (``map``): sum of precision at each relevant retrieved document / number of relevant
  documents in the qrels. ``AP@k`` (``map_cut.k``): the same sum over the top k only, still divided
  by the total number of relevant documents.
* ``P@k`` (``P.k``) divides by k even when fewer than k documents are retrieved; ``R@k``
  (``recall.k``); ``Rprec``; ``Success@k`` (``success.k``); ``RR`` (``recip_rank``) and ``RR@k``
  (``recip_rank`` on the run cut at k).
* ``NumRet``, ``NumRel``, ``NumRelRet`` are counts; their summary is the *sum* over queries, as in
  trec_eval's ``all`` line and ir_measures' aggregate (not a mean).
* ``Judged@k`` (not in trec_eval; ir_measures' definition): judged documents in the top k divided by
  min(k, number retrieved). ir_measures ranks ties by docid *ascending* for this measure; rankstack
  uses its one canonical order, so the two differ only when a tie straddles the cut-off.
* Queries evaluated: those in both the run and the qrels (trec_eval default); queries only in the
  run are ignored. ``missing="zero"`` is trec_eval ``-c``: qrels queries absent from the run score 0
  and enter the mean (``NumRel`` keeps its true count, as trec_eval's ``-c`` summary does).
  A qrels query with no relevant document scores 0 on every relevance-based measure.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

import numpy as np

from rankstack.errors import InputError
from rankstack.types import Qrels, Run

__all__ = ["Measure", "parse_measure", "parse_measures", "compute", "SUPPORTED"]

# family -> (cut-off: "required" | "optional" | "none", accepts rel=)
_FAMILIES: dict[str, tuple[str, bool]] = {
    "nDCG": ("optional", False),
    "AP": ("optional", True),
    "RR": ("optional", True),
    "P": ("required", True),
    "R": ("required", True),
    "Success": ("required", True),
    "Judged": ("optional", False),
    "Rprec": ("none", True),
    "NumRet": ("none", False),
    "NumRel": ("none", True),
    "NumRelRet": ("none", True),
}
_COUNTS = {"NumRet", "NumRel", "NumRelRet"}

SUPPORTED = ("nDCG@10", "nDCG", "AP", "AP@100", "RR", "RR@10", "R@100", "P@5", "Success@10",
             "Judged@10", "Rprec", "NumRet", "NumRel", "NumRelRet", "AP(rel=2)", "P(rel=2)@5")

# Other spellings people type (trec_eval, pyterrier, papers) -> our family. Never accepted silently:
# they only feed the did-you-mean, so one name means one thing everywhere in rankstack.
_ALIASES = {
    "map": "AP", "ndcg": "nDCG", "ndcg_cut": "nDCG", "recip_rank": "RR", "mrr": "RR", "p": "P",
    "precision": "P", "recall": "R", "r": "R", "map_cut": "AP", "success": "Success",
    "num_ret": "NumRet", "num_rel": "NumRel", "num_rel_ret": "NumRelRet", "rprec": "Rprec",
    "r-prec": "Rprec", "judged": "Judged", "ap": "AP", "rr": "RR", "numret": "NumRet",
    "numrel": "NumRel", "numrelret": "NumRelRet", "dcg": "nDCG",
}

_SYNTAX = re.compile(r"^(?P<family>[A-Za-z][A-Za-z_\-]*?)(?:\((?P<params>[^()]*)\))?(?:@(?P<cutoff>[^@()]+))?$")
_TREC_STYLE = re.compile(r"^(?P<family>[A-Za-z][A-Za-z_\-]*?)[._](?P<cutoff>\d+)$")


@dataclass(frozen=True)
class Measure:
    """A parsed measure. ``name`` is the canonical spelling (e.g. ``P(rel=2)@5``)."""

    family: str
    cutoff: int | None = None
    rel: int = 1

    @property
    def name(self) -> str:
        params = f"(rel={self.rel})" if self.rel != 1 else ""
        cut = f"@{self.cutoff}" if self.cutoff is not None else ""
        return f"{self.family}{params}{cut}"

    @property
    def is_count(self) -> bool:
        """Counts are summed over queries (trec_eval/ir_measures), everything else averaged."""
        return self.family in _COUNTS

    def __str__(self) -> str:
        return self.name


def _suggest(text: str) -> str:
    """A did-you-mean for an unknown or misspelt measure name."""
    m = _SYNTAX.match(text.strip()) or _TREC_STYLE.match(text.strip())
    family = m.group("family") if m else text
    cutoff = m.group("cutoff") if m else None
    target = _ALIASES.get(family.lower())
    if target is None:
        lowered = {f.lower(): f for f in _FAMILIES}
        target = lowered.get(family.lower())
    if target is None:
        close = difflib.get_close_matches(family.lower(), [f.lower() for f in _FAMILIES] + list(_ALIASES),
                                          n=1, cutoff=0.6)
        if close:
            target = _ALIASES.get(close[0]) or {f.lower(): f for f in _FAMILIES}[close[0]]
    if target is None:
        return ""
    needs = _FAMILIES[target][0]
    if needs == "none" or not (cutoff and cutoff.isdigit()):
        cutoff = "10" if needs == "required" else None
    return target + (f"@{cutoff}" if cutoff else "")


def _unknown(text: str, why: str) -> InputError:
    guess = _suggest(text)
    hint = f"did you mean {guess!r}? " if guess and guess != text else ""
    return InputError(f"unknown measure {text!r}: {why}",
                      fix=f"{hint}measures are named as in ir_measures, e.g. {', '.join(SUPPORTED)}")


def parse_measure(text: str) -> Measure:
    """Parse an ir_measures-style name such as ``nDCG@10``, ``AP(rel=2)`` or ``P(rel=2)@5``."""
    if not isinstance(text, str):
        raise InputError(f"a measure name must be a string, got {type(text).__name__}",
                         fix="pass names such as 'nDCG@10'")
    m = _SYNTAX.match(text.strip())
    if not m:
        raise _unknown(text, "not of the form Name, Name@k or Name(rel=N)@k")
    family = m.group("family")
    if family not in _FAMILIES:
        raise _unknown(text, f"{family!r} is not a supported measure")
    cut_rule, rel_ok = _FAMILIES[family]
    cutoff: int | None = None
    if m.group("cutoff") is not None:
        raw = m.group("cutoff")
        if cut_rule == "none":
            raise _unknown(text, f"{family} takes no cut-off")
        if not raw.isdigit() or int(raw) < 1:
            raise _unknown(text, f"cut-off {raw!r} is not a positive integer")
        cutoff = int(raw)
    elif cut_rule == "required":
        raise _unknown(text, f"{family} needs a cut-off such as {family}@10")
    rel = 1
    params = m.group("params")
    if params is not None:
        for part in filter(None, (p.strip() for p in params.split(","))):
            key, eq, value = (s.strip() for s in part.partition("="))
            if key != "rel" or not eq:
                raise _unknown(text, f"unsupported parameter {part!r} (only rel=N is supported)")
            if not rel_ok:
                raise _unknown(text, f"{family} takes no rel= parameter")
            if not value.isdigit() or int(value) < 1:
                raise _unknown(text, f"rel={value!r} is not a positive integer (as in trec_eval's "
                                     f"relevance_level)")
            rel = int(value)
    return Measure(family, cutoff, rel)


def parse_measures(measures: str | Measure | list[str | Measure] | tuple) -> list[tuple[str, Measure]]:
    """(name as given, parsed measure) pairs, duplicates dropped, order kept."""
    if isinstance(measures, (str, Measure)):
        measures = [measures]
    out: dict[str, Measure] = {}
    for item in measures:
        meas = item if isinstance(item, Measure) else parse_measure(item)
        key = item.name if isinstance(item, Measure) else str(item)
        out.setdefault(key, meas)
    if not out:
        raise InputError("no measures given", fix="pass at least one measure, e.g. 'nDCG@10'")
    return list(out.items())


# engine -----------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class _Joined:
    """Run rows of the evaluated queries, each with its judgement, plus the qrels of those queries."""

    n_queries: int
    qi: np.ndarray        # query index of each kept run row (rows grouped by query, in rank order)
    rank: np.ndarray      # 1-based rank
    rel: np.ndarray       # judgement (0 when unjudged)
    judged: np.ndarray    # bool
    qrel_qi: np.ndarray   # query index of each kept qrels row
    qrel_rel: np.ndarray


def _locate(sorted_keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pos = np.searchsorted(sorted_keys, values)
    ok = pos < len(sorted_keys)
    ok[ok] = sorted_keys[pos[ok]] == values[ok]
    return pos, ok


def _join(run: Run, qrels: Qrels, qids: np.ndarray) -> _Joined:
    rpos, rok = _locate(qids, run.qids)
    qpos, qok = _locate(qids, qrels.qids)
    r_docids, q_docids = run.docids[rok], qrels.docids[qok]
    qi, qrel_qi, qrel_rel = rpos[rok], qpos[qok], qrels.relevance[qok]
    rank = run.ranks()[rok]
    if len(r_docids) and len(q_docids):
        _, codes = np.unique(np.concatenate([r_docids, q_docids]), return_inverse=True)
        n_doc = int(codes.max()) + 1
        r_key = qi.astype(np.int64) * n_doc + codes[: len(r_docids)]
        q_key = qrel_qi.astype(np.int64) * n_doc + codes[len(r_docids):]
        # Qrels rows come sorted by (qid, docid), so this sort is a cheap no-op kept for safety.
        order = np.argsort(q_key, kind="stable")
        pos, found = _locate(q_key[order], r_key)
        rel = np.where(found, qrel_rel[order][np.minimum(pos, len(q_key) - 1)], 0)
    else:
        found = np.zeros(len(r_docids), dtype=bool)
        rel = np.zeros(len(r_docids), dtype=np.int64)
    return _Joined(len(qids), qi, rank, rel, found, qrel_qi, qrel_rel)


def _per_query_sum(j: _Joined, weights: np.ndarray) -> np.ndarray:
    return np.bincount(j.qi, weights=weights.astype(np.float64), minlength=j.n_queries)


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(len(num), dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


class _Engine:
    """Computes measures on one joined run; caches the per-level pieces measures share."""

    def __init__(self, j: _Joined) -> None:
        self.j = j
        self._cache: dict[tuple, np.ndarray] = {}

    def num_rel(self, level: int) -> np.ndarray:
        key = ("num_rel", level)
        if key not in self._cache:
            j = self.j
            self._cache[key] = np.bincount(j.qrel_qi[j.qrel_rel >= level], minlength=j.n_queries).astype(float)
        return self._cache[key]

    def is_rel(self, level: int) -> np.ndarray:
        return self.j.judged & (self.j.rel >= level)

    def rel_so_far(self, level: int) -> np.ndarray:
        """Number of relevant documents at or above each row's rank, within its query."""
        key = ("cum", level)
        if key not in self._cache:
            j = self.j
            isrel = self.is_rel(level).astype(np.int64)
            cum = np.cumsum(isrel)
            if len(cum):
                starts = np.flatnonzero(np.r_[True, j.qi[1:] != j.qi[:-1]])
                group = np.cumsum(np.r_[True, j.qi[1:] != j.qi[:-1]]) - 1
                base = cum[starts] - isrel[starts]
                cum = cum - base[group]
            self._cache[key] = cum
        return self._cache[key]

    def num_ret(self) -> np.ndarray:
        return np.bincount(self.j.qi, minlength=self.j.n_queries).astype(float)

    def top(self, k: int | None) -> np.ndarray:
        return np.ones(len(self.j.rank), dtype=bool) if k is None else self.j.rank <= k

    def compute(self, m: Measure) -> np.ndarray:
        j, k, lvl = self.j, m.cutoff, m.rel
        f = m.family
        if f == "NumRet":
            return self.num_ret()
        if f == "NumRel":
            return self.num_rel(lvl)
        if f == "NumRelRet":
            return _per_query_sum(j, self.is_rel(lvl))
        if f == "P":
            return _per_query_sum(j, self.is_rel(lvl) & self.top(k)) / float(k)
        if f == "R":
            return _divide(_per_query_sum(j, self.is_rel(lvl) & self.top(k)), self.num_rel(lvl))
        if f == "Success":
            return (_per_query_sum(j, self.is_rel(lvl) & self.top(k)) > 0).astype(float)
        if f == "Rprec":
            nr = self.num_rel(lvl)
            within = j.rank <= nr[j.qi] if len(j.qi) else np.zeros(0, dtype=bool)
            return _divide(_per_query_sum(j, self.is_rel(lvl) & within), nr)
        if f == "AP":
            hit = self.is_rel(lvl) & self.top(k)
            prec = np.where(hit, self.rel_so_far(lvl) / j.rank, 0.0)
            return _divide(_per_query_sum(j, prec), self.num_rel(lvl))
        if f == "RR":
            hit = np.flatnonzero(self.is_rel(lvl) & self.top(k))
            out = np.zeros(j.n_queries)
            q, first = np.unique(j.qi[hit], return_index=True)
            out[q] = 1.0 / j.rank[hit[first]]
            return out
        if f == "Judged":
            judged = _per_query_sum(j, j.judged & self.top(k))
            ret = self.num_ret()
            return _divide(judged, ret if k is None else np.minimum(ret, k))
        if f == "nDCG":
            gain = np.where(j.judged & (j.rel > 0), j.rel, 0).astype(np.float64)
            dcg = _per_query_sum(j, np.where(self.top(k), gain / np.log2(j.rank + 1.0), 0.0))
            return _divide(dcg, self._ideal_dcg(k))
        raise AssertionError(f"unhandled measure family {f}")  # parse_measure guards this

    def _ideal_dcg(self, k: int | None) -> np.ndarray:
        key = ("idcg", k)
        if key not in self._cache:
            j = self.j
            pos = j.qrel_rel > 0
            qq, gain = j.qrel_qi[pos], j.qrel_rel[pos].astype(np.float64)
            order = np.lexsort((-gain, qq))
            qq, gain = qq[order], gain[order]
            if len(qq):
                new = np.r_[True, qq[1:] != qq[:-1]]
                starts = np.flatnonzero(new)
                rank = np.arange(len(qq)) - starts[np.cumsum(new) - 1] + 1
            else:
                rank = np.zeros(0, dtype=np.int64)
            disc = np.where(rank <= k if k is not None else True, gain / np.log2(rank + 1.0), 0.0)
            self._cache[key] = np.bincount(qq, weights=disc, minlength=j.n_queries)
        return self._cache[key]


def compute(run: Run, qrels: Qrels, qids: list[str], measures: list[Measure]) -> dict[Measure, np.ndarray]:
    """Per-query values (aligned with the sorted ``qids``) of every measure, one NumPy pass each."""
    q = np.asarray(sorted(qids), dtype=str) if qids else np.array([], dtype="<U1")
    engine = _Engine(_join(run, qrels, q))
    return {m: engine.compute(m) for m in dict.fromkeys(measures)}
