"""A seeded synthetic corpus + queries + qrels in the BEIR layout, for scale tests (any size, no data licence).

Why synthetic: timing and memory of indexing and search depend on the *shape* of the text (term
frequencies, document lengths, vocabulary growth), not on its meaning, and a 1M-passage collection
must be reproducible from one seed on any machine. The shape follows what is known of real text:

* terms: a Zipf-Mandelbrot law over a fixed pseudo-word vocabulary, p(r) ~ 1/(r + 2.7)^1.07 (Zipf,
  "Human Behavior and the Principle of Least Effort", 1949; Mandelbrot, 1953), so a few words are
  very frequent and most are rare, and the vocabulary keeps growing with the corpus (Heaps' law);
* topics: ~30% of a document's tokens come from one of 1,000 topics (a random set of 200 mid-frequency
  words), so terms co-occur as in real passages rather than independently;
* lengths: log-normal around 60 words (MS MARCO passages: mean ~56, most 30-100), with a 3% long tail
  of 2-6x longer documents; titles of 3-9 words;
* queries: 2-7 terms drawn from ONE source document, favouring its rarer terms (weights = -log p, an
  IDF proxy), with a 30% chance of one noise term from the background law; the source document is the
  query's relevant document (grade 1) — qrels by construction.

Documents are generated in fixed blocks of 10,000 with their own seed, so document ``d{i}`` is the same
for any corpus size >= i (100k is a prefix of 1M), and the writer streams: memory does not grow with
``docs``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rankstack.errors import InputError

__all__ = ["SyntheticConfig", "generate_documents", "write_synthetic_collection", "vocabulary"]

BLOCK = 10_000
KIND = "synthetic-collection"
FORMAT_VERSION = 1
_SYLLABLES = [c + v for c in "bcdfghjklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ai", "ou")] + \
             [c + v + e for c in "bdgklmnprst" for v in "aeiou" for e in "nrs"]


@dataclass(frozen=True)
class SyntheticConfig:
    """Sizes and shape; the defaults give MS MARCO-like passages."""

    docs: int = 10_000
    queries: int = 1_000
    seed: int = 0
    vocab_size: int = 200_000
    zipf_s: float = 1.07
    median_words: int = 60
    topics: int = 1_000
    topic_share: float = 0.3

    def __post_init__(self) -> None:
        for name in ("docs", "queries", "vocab_size", "median_words", "topics"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"synthetic: {name} must be a positive integer, got {value!r}")
        if self.queries > self.docs:
            raise InputError(f"synthetic: {self.queries} queries need as many source documents, only {self.docs}",
                             fix="ask for fewer queries or more documents")
        if not 0 <= self.topic_share < 1:
            raise InputError(f"synthetic: topic_share must be in [0, 1), got {self.topic_share}")


def vocabulary(size: int, seed: int) -> np.ndarray:
    """``size`` distinct pronounceable pseudo-words (2-4 syllables), most frequent first."""
    rng = np.random.default_rng([seed, 1])
    syl = np.array(_SYLLABLES)
    words: dict[str, None] = {}
    while len(words) < size:
        n = size - len(words)
        k = rng.integers(2, 5, size=2 * n)
        parts = syl[rng.integers(0, len(syl), size=(2 * n, 4))]
        for row, length in zip(parts, k):
            words.setdefault("".join(row[:length]), None)
            if len(words) == size:
                break
    out = np.array(list(words))
    # frequent words should be short (as in real text): order by length, ties kept in draw order
    return out[np.argsort([len(w) for w in out], kind="stable")]


class _Model:
    def __init__(self, cfg: SyntheticConfig) -> None:
        self.cfg = cfg
        self.words = vocabulary(cfg.vocab_size, cfg.seed)
        ranks = np.arange(1, cfg.vocab_size + 1, dtype=np.float64)
        p = 1.0 / (ranks + 2.7) ** cfg.zipf_s
        self.p = p / p.sum()
        self.cdf = np.cumsum(self.p)
        self.cdf[-1] = 1.0
        rng = np.random.default_rng([cfg.seed, 2])
        mid = np.arange(min(200, cfg.vocab_size // 4), min(20_000, cfg.vocab_size))  # mid-frequency band
        self.topic_words = rng.choice(mid, size=(cfg.topics, min(200, len(mid))), replace=True)

    def block(self, b: int) -> tuple[list[str], list[str], list[np.ndarray]]:
        """Titles, texts and token ids of documents ``b*BLOCK .. (b+1)*BLOCK - 1``."""
        cfg, rng = self.cfg, np.random.default_rng([self.cfg.seed, 3, b])
        lengths = np.exp(rng.normal(np.log(cfg.median_words), 0.35, size=BLOCK))
        tail = rng.random(BLOCK) < 0.03
        lengths[tail] *= rng.uniform(2, 6, size=int(tail.sum()))
        lengths = np.clip(np.round(lengths), 8, 1000).astype(np.int64)
        tlen = rng.integers(3, 10, size=BLOCK)
        total = int(lengths.sum() + tlen.sum())
        ids = np.searchsorted(self.cdf, rng.random(total))
        topic = np.repeat(rng.integers(0, cfg.topics, size=BLOCK), lengths + tlen)
        from_topic = rng.random(total) < cfg.topic_share
        pick = rng.integers(0, self.topic_words.shape[1], size=total)
        ids[from_topic] = self.topic_words[topic[from_topic], pick[from_topic]]
        tokens = self.words[ids].tolist()
        titles, texts, token_ids = [], [], []
        pos = 0
        for n_title, n_text in zip(tlen.tolist(), lengths.tolist()):
            titles.append(" ".join(tokens[pos:pos + n_title]).capitalize())
            texts.append(" ".join(tokens[pos + n_title:pos + n_title + n_text]) + ".")
            token_ids.append(ids[pos:pos + n_title + n_text])
            pos += n_title + n_text
        return titles, texts, token_ids

    def query(self, token_ids: np.ndarray, rng: np.random.Generator) -> str:
        distinct = np.unique(token_ids)
        weights = -np.log(self.p[distinct])
        n = int(min(len(distinct), rng.choice([2, 3, 3, 4, 4, 5, 6, 7])))
        terms = rng.choice(distinct, size=n, replace=False, p=weights / weights.sum())
        if rng.random() < 0.3:  # a noise term from the background law
            terms[rng.integers(0, n)] = int(np.searchsorted(self.cdf, rng.random()))
        return " ".join(self.words[terms].tolist())


def generate_documents(cfg: SyntheticConfig) -> Iterator[tuple[str, str, str]]:
    """``(docid, title, text)`` of every document, streamed block by block."""
    model = _Model(cfg)
    for b in range((cfg.docs + BLOCK - 1) // BLOCK):
        titles, texts, _ = model.block(b)
        for j in range(min(BLOCK, cfg.docs - b * BLOCK)):
            yield f"d{b * BLOCK + j}", titles[j], texts[j]


def write_synthetic_collection(cfg: SyntheticConfig, out: str | Path, *, overwrite: bool = False,
                               progress: bool = True) -> Path:
    """Write ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/test.tsv`` to ``out`` (atomic folder + manifest)."""
    from tqdm.auto import tqdm

    from rankstack.storage import atomic_directory, write_manifest

    model = _Model(cfg)
    qrng = np.random.default_rng([cfg.seed, 4])
    sources = np.sort(qrng.choice(cfg.docs, size=cfg.queries, replace=False))
    qids = {int(d): f"q{i}" for i, d in enumerate(qrng.permutation(sources))}
    queries: dict[str, tuple[str, str]] = {}
    with atomic_directory(out, overwrite=overwrite) as tmp:
        with open(tmp / "corpus.jsonl", "w", encoding="utf-8") as fh, \
                tqdm(total=cfg.docs, unit="doc", desc="synthetic corpus", disable=not progress) as bar:
            for b in range((cfg.docs + BLOCK - 1) // BLOCK):
                titles, texts, token_ids = model.block(b)
                n = min(BLOCK, cfg.docs - b * BLOCK)
                lines = []
                for j in range(n):
                    i = b * BLOCK + j
                    lines.append(json.dumps({"_id": f"d{i}", "title": titles[j], "text": texts[j]}))
                    if i in qids:
                        queries[qids[i]] = (model.query(token_ids[j], np.random.default_rng([cfg.seed, 5, i])),
                                            f"d{i}")
                fh.write("\n".join(lines) + "\n")
                bar.update(n)
        order = sorted(queries, key=lambda q: int(q[1:]))
        with open(tmp / "queries.jsonl", "w", encoding="utf-8") as fh:
            for q in order:
                fh.write(json.dumps({"_id": q, "text": queries[q][0]}) + "\n")
        (tmp / "qrels").mkdir()
        with open(tmp / "qrels" / "test.tsv", "w", encoding="utf-8") as fh:
            fh.write("query-id\tcorpus-id\tscore\n")
            for q in order:
                fh.write(f"{q}\t{queries[q][1]}\t1\n")
        write_manifest(tmp, KIND, FORMAT_VERSION, {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
                       libraries=["numpy"])
    return Path(out)
