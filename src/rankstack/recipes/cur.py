"""``rankstack train cur-index``: the offline anchor matrix of CUR / ADACUR search, saved as an artefact.

Why a recipe: the index costs ``anchor_queries x N`` cross-encoder calls (scifact, 50 anchor queries:
~259k pairs), so it is built once, on purpose, and saved (``scores.npy`` + JSON + checksummed
manifest, :class:`rankstack.rerank.cur_index.AnchorIndex`); ``adacur(model=M, index=DIR)`` then loads
it instead of building one in the cache. Method: Yadav et al., "Efficient Nearest Neighbor Search for
Cross-Encoder Models using Matrix Factorization" (EMNLP 2022) and ADACUR (Findings of ACL 2023).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rankstack.errors import InputError
from rankstack.recipes.config import option

__all__ = ["CURIndexConfig", "CURIndexResult", "run"]


@dataclass(frozen=True)
class CURIndexConfig:
    """Score anchor queries of one split against every document with a cross-encoder."""

    collection: str = option(help="a BEIR folder, or a collection name under the data root (e.g. scifact)")
    model: str = option(help="cross-encoder folder (from 'rankstack train reranker')")
    out: Path = option(help="index folder to write (atomically); an existing CUR index needs --overwrite")
    anchor_split: str = option("train", help="split whose queries are the anchor queries (never the test split)")
    anchor_queries: int = option(50, help="number of anchor queries (seeded sample of the split; rank of the "
                                 "approximation)")
    seed: int = option(0, help="seed of the anchor-query sample")
    precision: Literal["auto", "fp32", "bf16", "bf16-weights"] = option(
        "bf16-weights", help="cross-encoder inference path (bf16 falls back to fp32 without native bf16)")
    batch_size: int = option(16, help="pairs per forward pass")
    threads: int | None = option(None, help="torch threads while scoring (default: torch's)")
    data_root: str | None = option(None, help="folder holding collections by name ($RANKSTACK_DATA or ../shared/data)")
    overwrite: bool = option(False, help="replace a CUR index already saved at --out")

    def __post_init__(self) -> None:
        if self.anchor_queries < 1:
            raise InputError(f"--anchor-queries must be a positive integer, got {self.anchor_queries}")
        if self.anchor_split == "test":
            raise InputError("--anchor-split test would put test queries into the index",
                             fix="use the train (or dev) split for anchor queries")


@dataclass
class CURIndexResult:
    out: Path
    anchor_queries: int
    items: int
    seconds: float

    def to_text(self) -> str:
        pairs = self.anchor_queries * self.items
        return (f"wrote {self.out}: {self.anchor_queries} anchor queries x {self.items} documents "
                f"({pairs} cross-encoder calls, {pairs / max(self.seconds, 1e-9):.1f} pairs/s) in {self.seconds:.0f}s")


def run(config: CURIndexConfig, *, progress: bool = True) -> CURIndexResult:
    from rankstack.data.beir import Collection, default_data_root
    from rankstack.rerank.cross_encoder import CrossEncoderReranker
    from rankstack.rerank.cur_index import KIND, index_for_collection, sample_anchor_queries
    from rankstack.storage import check_output_folder

    start = time.perf_counter()
    collection = Collection(config.collection, data_root=config.data_root)
    inputs = (Path(collection.path), Path(config.data_root) if config.data_root else default_data_root(),
              Path(config.model))
    check_output_folder(config.out, kind=KIND, overwrite=config.overwrite, inputs=inputs)  # before any work
    anchors = sample_anchor_queries(collection, config.anchor_split, config.anchor_queries, config.seed)
    scorer = CrossEncoderReranker(config.model, documents=collection, precision=config.precision,
                                  batch_size=config.batch_size, threads=config.threads, depth=None)
    index = index_for_collection(scorer, collection, anchors, cache_dir=None, progress=progress)
    index.save(config.out, overwrite=config.overwrite, inputs=inputs)
    return CURIndexResult(config.out, index.n_anchor_queries, len(index), time.perf_counter() - start)
