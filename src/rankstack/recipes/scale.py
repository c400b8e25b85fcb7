"""``rankstack synth-corpus``: a seeded synthetic BEIR collection for scale tests (see data/synthetic.py).

Why a recipe: the sizes and shape parameters are declared once here, for the command line, TOML and
the scale benchmark (benchmarks/bench_scale.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rankstack.errors import InputError
from rankstack.recipes.config import option

__all__ = ["SynthCorpusConfig", "SynthCorpusResult", "run"]


@dataclass(frozen=True)
class SynthCorpusConfig:
    """Documents, queries and qrels with Zipfian terms and MS MARCO-like lengths, written crash-safely."""

    out: Path = option(help="collection folder to write (corpus.jsonl, queries.jsonl, qrels/test.tsv)")
    docs: int = option(100_000, help="number of passages")
    queries: int = option(1_000, help="number of queries (one relevant passage each, by construction)")
    seed: int = option(0, help="random seed: the same seed gives the same bytes")
    vocab_size: int = option(200_000, help="pseudo-word vocabulary (Zipf-Mandelbrot frequencies)")
    median_words: int = option(60, help="median passage length in words (log-normal, 3% long tail)")
    overwrite: bool = option(False, help="replace a synthetic collection already at --out")

    def __post_init__(self) -> None:
        if self.docs < 1 or self.queries < 1:
            raise InputError("--docs and --queries must be positive integers")


@dataclass
class SynthCorpusResult:
    out: Path
    docs: int
    queries: int
    seconds: float

    def to_text(self) -> str:
        return f"wrote {self.out}: {self.docs} passages, {self.queries} queries in {self.seconds:.1f}s"


def run(config: SynthCorpusConfig, *, progress: bool = True) -> SynthCorpusResult:
    from rankstack.data.synthetic import SyntheticConfig, write_synthetic_collection

    cfg = SyntheticConfig(docs=config.docs, queries=config.queries, seed=config.seed, vocab_size=config.vocab_size,
                          median_words=config.median_words)
    start = time.perf_counter()
    write_synthetic_collection(cfg, config.out, overwrite=config.overwrite, progress=progress)
    return SynthCorpusResult(config.out, config.docs, config.queries, time.perf_counter() - start)
