"""Pick the bi-encoder's inference path by measurement (``precision="calibrate"``).

Why: see :mod:`rankstack.encode.calibrate` -- the fastest of fp32 / bf16 / torch int8 / ONNX Runtime
fp32 / int8 depends on the CPU. An encoder's output that matters is the query-document similarity, so
the score compared with fp32 is the cosine of every (query, document) pair of a calibration set
(Pearson >= ``MIN_CORRELATION`` on those similarities, see below). The calibration set is built here,
deterministically, from the model's own vocabulary (hand-written because the encoder has no corpus at
construction time):
``docs`` texts of ~``doc_tokens`` word pieces (document-length inputs decide the speed) and ``queries``
short ones. The decision is cached per encoder id (weights, max length), CPU, threads and batch size.

Threshold: Pearson >= 0.98 on these pseudo-text similarities, not the reranker's 0.999. Pseudo-texts
spread their similarities narrowly, which exaggerates int8 noise, so 0.999 rejects every int8 path. But
the pseudo-text Pearson barely separates an int8 path that keeps nDCG@10 from one that does not: ONNX int8
of MiniLM reached 0.975 on the Intel AMX Xeon and moved scifact nDCG@10 by -0.0010 (inside the +-0.002
band), and 0.970 on an AVX2-only AMD EPYC (no VNNI: ``vpmaddubsw`` products) and moved it by -0.0035
(outside; benchmarks/inference.md, AMD section). torch int8 reached 0.933 on the Xeon (nDCG@10 +0.0036,
outside the band) and 0.935 on the AMD EPYC.
0.97 (the first cut-off, set from the Intel point alone) let the AMD int8 path through, a silent quality
loss; 0.98 keeps int8 out on both CPUs, so ``calibrate`` chooses among the paths that keep fp32's
similarities (bf16 where native, ONNX Runtime fp32) and int8 stays an explicit choice
(``precision="onnx-int8"``). ``min_correlation`` is a parameter for users who measured their own model.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from rankstack.encode.calibrate import Decision, calibrate, decision_key, load_decision, save_decision
from rankstack.encode.paths import candidate_paths

__all__ = ["calibration_texts", "calibrate_encoder", "KIND"]

log = logging.getLogger(__name__)

KIND = "encoder"
MIN_CORRELATION = 0.98


def calibration_texts(tokenizer: Any, docs: int = 64, queries: int = 16, doc_tokens: int = 200,
                      query_tokens: int = 10, seed: int = 0) -> tuple[list[str], list[str]]:
    """Seeded pseudo-texts of whole words from the tokenizer's vocabulary: (queries, documents)."""
    vocab = [w for w, _ in sorted(tokenizer.get_vocab().items(), key=lambda x: x[1])
             if w.isalpha() and w.isascii() and len(w) > 2]
    if len(vocab) < 10:
        vocab = [w for w in tokenizer.get_vocab() if w.isalnum()] or ["text"]
    rng = np.random.default_rng(seed)
    # a shared topic vocabulary per query/document pair group, so similarities are spread, not all ~0
    topics = [rng.choice(len(vocab), 30) for _ in range(queries)]

    def text(n: int, topic: np.ndarray) -> str:
        mix = np.where(rng.random(n) < 0.4, rng.choice(topic, n), rng.choice(len(vocab), n))
        return " ".join(vocab[i] for i in mix)

    qs = [text(query_tokens, topics[i]) for i in range(queries)]
    ds = [text(int(doc_tokens * rng.uniform(0.5, 1.2)), topics[i % queries]) for i in range(docs)]
    return qs, ds


def calibrate_encoder(encoder: Any, rounds: int = 2, force: bool = False, paths: list[str] | None = None,
                      min_correlation: float = MIN_CORRELATION) -> Decision:
    """Measure ``encoder`` (a :class:`SentenceTransformerEncoder`) on each candidate path; cached."""
    from importlib.metadata import PackageNotFoundError, version

    from rankstack.encode.sentence_transformers import PATH_CHOICES

    todo = paths or candidate_paths(tuple(PATH_CHOICES))
    libs = {}
    for name in ("torch", "onnxruntime", "sentence-transformers"):
        try:
            libs[name] = version(name)
        except PackageNotFoundError:
            pass
    key = decision_key(KIND, encoder.encoder_id, encoder.threads, batch_size=encoder.batch_size,
                       paths=sorted(todo), libraries=libs, min_correlation=min_correlation)
    if not force:
        cached = load_decision(encoder.cache_dir, KIND, key)
        if cached is not None:
            log.info("encoder path from cache: %s", cached.path)
            return cached
    qs, ds = calibration_texts(encoder.model.tokenizer)
    variants: dict[str, Any] = {}

    def warmup(path: str) -> None:
        variants[path] = encoder.with_path(path)
        variants[path].encode(ds[: encoder.batch_size], progress=False)

    def runner(path: str):
        def run() -> np.ndarray:
            enc = variants[path]
            d = enc.encode(ds, progress=False)
            q = enc.encode(qs, progress=False)
            return (q @ d.T).reshape(-1)
        return run

    decision = calibrate(KIND, key, {p: runner(p) for p in todo}, items=len(qs) + len(ds), threads=encoder.threads,
                         rounds=rounds, warmup=warmup, min_correlation=min_correlation,
                         extra={"encoder_id": encoder.encoder_id, "batch_size": encoder.batch_size,
                                "texts": f"{len(qs)} pseudo-queries x {len(ds)} pseudo-documents"})
    save_decision(encoder.cache_dir, decision)
    log.info("%s", decision.to_text())
    return decision
