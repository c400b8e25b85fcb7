"""Filters for generated (query, document) pairs; each returns what it kept and a kept/total report.

- :func:`inpars_filter`: keep the top ``fraction`` of queries by the generator's mean token
  log-probability (InPars, Bonifacio et al. 2022, kept the top 10k of 100k generated queries).
- :func:`round_trip_filter`: round-trip consistency (Alberti et al. 2019, "Synthetic QA Corpora
  Generation with Roundtrip Consistency"; Promptagator, Dai et al. 2022): keep a pair when its source
  document is in a first stage's top ``k`` for the generated query. The first stage is BM25 by
  default (:func:`bm25_search`); any ``search(texts, k) -> [[docid, ...], ...]`` works.
  For ``ict`` queries the sentence is still in the indexed document, so the check is lenient there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rankstack.errors import InputError
from rankstack.synth.records import SyntheticQuery

__all__ = ["FilterReport", "inpars_filter", "round_trip_filter", "bm25_search", "Search"]

Search = Callable[[Sequence[str], int], Sequence[Sequence[str]]]


@dataclass(frozen=True)
class FilterReport:
    name: str
    kept: int
    total: int
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        return self.kept / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"filter": self.name, "kept": self.kept, "total": self.total,
                "kept_fraction": round(self.fraction, 4), **self.params}

    def __str__(self) -> str:
        return f"{self.name}: kept {self.kept}/{self.total} ({100 * self.fraction:.1f}%)"


def inpars_filter(records: Sequence[SyntheticQuery], fraction: float = 0.1) -> tuple[list[SyntheticQuery], FilterReport]:
    """The ``ceil(fraction * n)`` records with the highest score, in their original order.

    Ties at the cut are broken by qid (deterministic). Records without a score (no-LLM generators)
    cannot be ranked: InputError.
    """
    if not 0.0 < fraction <= 1.0:
        raise InputError(f"inpars filter: fraction must be in (0, 1], got {fraction!r}",
                         fix="e.g. 0.1 keeps the best-scored 10%")
    unscored = [r.qid for r in records if r.score is None]
    if unscored:
        raise InputError(f"inpars filter: {len(unscored)} record(s) have no log-probability score, e.g. "
                         f"{unscored[0]!r} (generator {next(r.generator for r in records if r.score is None)!r})",
                         fix="use the inpars filter on queries of an LLM generator (llm-instruct, inpars)")
    n = math.ceil(fraction * len(records))
    best = sorted(range(len(records)), key=lambda i: (-float(records[i].score), records[i].qid))[:n]  # type: ignore[arg-type]
    keep = set(best)
    kept = [r for i, r in enumerate(records) if i in keep]
    return kept, FilterReport("inpars", len(kept), len(records), {"fraction": fraction})


def round_trip_filter(records: Sequence[SyntheticQuery], search: Search, k: int = 10,
                      batch_size: int = 1000) -> tuple[list[SyntheticQuery], FilterReport]:
    """Records whose ``doc_id`` is among ``search``'s top ``k`` for their query text, in order."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError(f"round-trip filter: k must be a positive integer, got {k!r}")
    kept: list[SyntheticQuery] = []
    for start in range(0, len(records), batch_size):
        chunk = records[start:start + batch_size]
        hits = search([r.text for r in chunk], k)
        for r, top in zip(chunk, hits):
            if r.doc_id in set(list(top)[:k]):
                kept.append(r)
    return kept, FilterReport("round-trip", len(kept), len(records), {"k": k})


def bm25_search(collection: Any, **params: Any) -> Search:
    """A ``search`` over ``collection`` (a Collection, folder or name) with rankstack's BM25 (bm25s)."""
    from rankstack.retrieve.bm25 import BM25Retriever

    retriever = BM25Retriever.from_collection(collection, **params)

    def search(texts: Sequence[str], k: int) -> list[list[str]]:
        return [list(map(str, docids)) for docids, _ in retriever.search(list(texts), k=k)]

    return search
