"""Two runs of one query side by side: judgements, rank changes and which judged documents each missed.

Why rank changes against the *whole* other run (not only its top k): a document that a reranker
lifts from rank 240 into the top 10 is the interesting case, and "new" should mean the other run
never retrieved it at all, not that it sat just below the cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Row", "Side", "compare_query", "change_label"]


@dataclass(frozen=True)
class Row:
    rank: int
    docid: str
    score: float
    grade: int | None          # None: not judged
    other_rank: int | None     # rank of the same document in the other run (None: not retrieved)
    change: int | None         # other_rank - rank (> 0: this run ranks it higher); None when absent there
    title: str
    text: str
    shared: bool               # also in the other run's top k


@dataclass(frozen=True)
class Side:
    run: str
    rows: list[Row]
    values: dict[str, float]   # per-query value of each measure
    missed: list[tuple[str, int, int | None]]   # relevant docs not in this top k: (docid, grade, rank or None)


def change_label(row: Row, side: str) -> tuple[str, str]:
    """(text, css class) of a document's move from run A to run B.

    In B's column: '▲3' three places higher than in A, '▼2' lower, '=' same rank, 'new' (A did not
    retrieve it). In A's column: '→7' its rank in B, 'gone' (B did not retrieve it); coloured by
    whether B moved it up or down."""
    if side == "b":
        if row.change is None:
            return "new", "new"
        if row.change > 0:
            return f"\u25b2{row.change}", "up"
        if row.change < 0:
            return f"\u25bc{-row.change}", "down"
        return "=", "same"
    if row.other_rank is None:
        return "gone", "gone"
    cls = "up" if row.change < 0 else "down" if row.change > 0 else "same"
    return f"\u2192{row.other_rank}", cls


def _ranking(run: Any, qid: str) -> tuple[list[str], list[float]]:
    docids, scores = run.for_query(qid)
    return [str(d) for d in docids.tolist()], [float(s) for s in scores.tolist()]


def compare_query(exp: Any, coll: Any, qid: str, a: str, b: str, k: int) -> tuple[Side, Side]:
    """Top ``k`` of runs ``a`` and ``b`` for ``qid`` with judgements and ranks in the other run."""
    judged = coll.qrels.get(qid, {})
    rankings = {name: _ranking(exp.run(name), qid) for name in (a, b)}
    positions = {name: {d: i + 1 for i, d in enumerate(docs)} for name, (docs, _) in rankings.items()}
    sides = []
    for this, other in ((a, b), (b, a)):
        docs, scores = rankings[this]
        other_top = set(rankings[other][0][:k])
        rows = []
        for i, (d, s) in enumerate(zip(docs[:k], scores[:k])):
            other_rank = positions[other].get(d)
            title, text = coll.document(d) or ("", "(not in the collection)")
            rows.append(Row(rank=i + 1, docid=d, score=s, grade=judged.get(d), other_rank=other_rank,
                            change=None if other_rank is None else other_rank - (i + 1),
                            title=title, text=text, shared=d in other_top))
        top = set(docs[:k])
        missed = sorted(((d, g, positions[this].get(d)) for d, g in judged.items() if g > 0 and d not in top),
                        key=lambda t: (t[2] is None, t[2] or 0, t[0]))
        values = {m: exp.values[this][m][qid] for m in exp.measures if qid in exp.values[this][m]}
        sides.append(Side(run=this, rows=rows, values=values, missed=missed))
    return sides[0], sides[1]
