"""Which documents get synthetic queries: ``uniform`` sampling, or DUQGen's cluster-stratified sampling.

DUQGen ("DUQGen: Effective Unsupervised Domain Adaptation of Neural Rankers by Diversifying Synthetic
Query Generation", Chandradevan, Dhole & Agichtein, NAACL 2024) makes the synthetic set represent the
whole target collection. Following the authors' code (emory-irlab/DUQGen,
``sample_target_collection_documents.py``):

1. embed every document (here MiniLM through :mod:`rankstack.encode`), cluster with FAISS k-means
   into K clusters (K from the elbow of the within-cluster error when not given; the paper picks K
   by the knee of the SSE curve);
2. give cluster i a quota of ``1 + floor((N - K) * |C_i| / |D|)`` documents, the remainder one each
   to the largest clusters -- proportional to cluster size, every cluster represented;
3. inside a cluster draw documents without replacement with probability
   ``softmax(cos(doc, centroid) / T)`` (T = 1), pooling ``pool_draws`` seeded draws (5 in the
   paper's code), and keep the quota by MMR from the document nearest the centroid (lambda = 1, the
   code's default, ranks by similarity to it).

Coverage (:func:`coverage`) is reported for any selection: clusters hit, and the entropy of the
selection's cluster distribution relative to the corpus's (1.0 = the same topic spread).
The paper also drops documents under 300 characters; ``min_chars`` does the same when set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rankstack.errors import InputError, require

__all__ = ["Selection", "select_uniform", "select_duqgen", "kmeans", "duqgen_quotas", "within_cluster_probs",
           "sample_clusters",
           "coverage", "elbow_k"]


@dataclass(frozen=True)
class Selection:
    """Selected document positions (into the corpus order), in generation order, and a report."""

    indices: np.ndarray
    method: str
    report: dict[str, Any] = field(default_factory=dict)


def select_uniform(n_docs: int, n: int, seed: int = 0) -> Selection:
    """``n`` documents drawn uniformly without replacement (all of them, shuffled, when ``n >= n_docs``)."""
    if n_docs < 1:
        raise InputError("cannot select documents from an empty corpus", fix="give a collection with documents")
    rng = np.random.default_rng(seed)
    idx = rng.permutation(n_docs)[: min(n, n_docs)]
    return Selection(idx, "uniform", {"selected": int(len(idx)), "corpus": int(n_docs)})


def kmeans(vectors: np.ndarray, k: int, seed: int = 0, niter: int = 25,
           nredo: int = 5) -> tuple[np.ndarray, np.ndarray, float]:
    """FAISS k-means, best of ``nredo`` seeded starts (one start often merges two small clusters):
    (assignment per vector, centroids [k, d], sum of squared distances)."""
    faiss = require("faiss", "dense", "DUQGen document clustering")
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    km = faiss.Kmeans(x.shape[1], int(k), niter=niter, nredo=nredo, seed=int(seed), verbose=False,
                      min_points_per_centroid=1, max_points_per_centroid=1 << 20)
    before = faiss.omp_get_max_threads()
    if len(x) < 20000:  # OpenMP start-up costs more than it saves on small inputs (and on a loaded CPU)
        faiss.omp_set_num_threads(1)
    try:
        km.train(x)
        dist, assign = km.index.search(x, 1)
    finally:
        faiss.omp_set_num_threads(before)
    return assign[:, 0].astype(np.int64), km.centroids.copy(), float(dist.sum())


def elbow_k(vectors: np.ndarray, candidates: Sequence[int], seed: int = 0) -> tuple[int, dict[int, float]]:
    """The knee of the k-means error curve (the point farthest below the chord joining its ends)."""
    ks = sorted({int(k) for k in candidates if 1 <= k <= len(vectors)})
    if len(ks) < 3:
        return (ks[-1] if ks else 1), {}
    sse = {k: kmeans(vectors, k, seed)[2] for k in ks}
    x = (np.array(ks) - ks[0]) / (ks[-1] - ks[0])
    y = np.array([sse[k] for k in ks])
    y = (y - y.min()) / max(y.max() - y.min(), 1e-12)
    return ks[int(np.argmax(1.0 - x - y))], sse


def duqgen_quotas(sizes: Sequence[int], n: int) -> np.ndarray:
    """Documents to take from each cluster (DUQGen's step 2); sums to ``n`` when ``n >= K``.

    With ``n < K`` (fewer documents than clusters) the ``n`` largest clusters get one each.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    k, total = len(sizes), int(sizes.sum())
    order = np.lexsort((np.arange(k), sizes))  # ascending size, ties by index (as the authors sort)
    quota = np.zeros(k, dtype=np.int64)
    if n < k:
        quota[order[::-1][:n]] = 1
        return quota
    quota[:] = 1 + np.floor((n - k) * sizes / total).astype(np.int64)
    remaining = n - int(quota.sum())
    if remaining > 0:
        quota[order[-remaining:]] += 1
    quota = np.minimum(quota, sizes)
    # a small cluster cannot give more than it holds: the shortfall goes to the largest with room
    target = min(n, total)
    while quota.sum() < target:
        for c in order[::-1]:
            if quota[c] < sizes[c] and quota.sum() < target:
                quota[c] += 1
    return quota


def within_cluster_probs(vectors: np.ndarray, centroid: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """softmax(cos(doc, centroid) / T) over a cluster's documents (DUQGen's step 3)."""
    v = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    c = centroid / max(float(np.linalg.norm(centroid)), 1e-12)
    logits = (v @ c) / temperature
    p = np.exp(logits - logits.max())
    return p / p.sum()


def _mmr(pool: np.ndarray, vectors: np.ndarray, seed_doc: int, take: int, lam: float) -> list[int]:
    """Maximal marginal relevance (Carbonell & Goldstein 1998) from ``seed_doc``: ``take`` of ``pool``."""
    v = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    rel = v[pool] @ v[seed_doc]
    chosen: list[int] = []
    left = list(range(len(pool)))
    while left and len(chosen) < take:
        if chosen:
            red = (v[pool[left]] @ v[pool[chosen]].T).max(axis=1)
        else:
            red = np.zeros(len(left))
        score = lam * rel[left] - (1 - lam) * red
        best = left[int(np.argmax(score))]
        chosen.append(best)
        left.remove(best)
    return [int(pool[i]) for i in chosen]


def select_duqgen(vectors: np.ndarray, n: int, *, clusters: int | None = None, seed: int = 0,
                  temperature: float = 1.0, pool_draws: int = 5, mmr_lambda: float = 1.0,
                  eligible: np.ndarray | None = None) -> Selection:
    """DUQGen's selection of ``n`` documents from ``vectors`` (one row per corpus document).

    ``eligible`` (bool per document) excludes documents (empty or too short) from clustering and
    sampling. Returns positions into ``vectors``, cluster by cluster in a seeded shuffled order.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    all_idx = np.arange(len(vectors)) if eligible is None else np.flatnonzero(eligible)
    if len(all_idx) == 0:
        raise InputError("DUQGen: no document to select from (the corpus is empty, or every document "
                         "is empty or shorter than min_chars)", fix="check the corpus or lower --min-chars")
    if temperature <= 0 or pool_draws < 1 or not 0.0 <= mmr_lambda <= 1.0:
        raise InputError("DUQGen: temperature must be > 0, pool_draws >= 1 and mmr_lambda in [0, 1]")
    x = vectors[all_idx]
    n = min(n, len(all_idx))
    if clusters is None:
        cands = [k for k in (5, 10, 20, 50, 100, 200, 500) if k <= min(n, len(all_idx) // 2)]
        k, sse = elbow_k(x, cands or [max(1, min(n, len(all_idx)))], seed)
    else:
        k, sse = int(min(clusters, len(all_idx))), {}
    if k < 1:
        raise InputError(f"DUQGen: clusters must be >= 1, got {clusters!r}")
    assign, centroids, _ = kmeans(x, k, seed)
    picked = sample_clusters(x, assign, centroids, n, seed=seed, temperature=temperature, pool_draws=pool_draws,
                             mmr_lambda=mmr_lambda)
    indices = all_idx[np.asarray(picked, dtype=np.int64)]
    report = {"selected": int(len(indices)), "corpus": int(len(vectors)), "eligible": int(len(all_idx)),
              "clusters": int(k), "k_chosen_by": "elbow" if clusters is None else "given",
              "sse_by_k": {str(kk): round(v, 3) for kk, v in sse.items()},
              **coverage(assign, np.searchsorted(all_idx, indices), k)}
    return Selection(indices, "duqgen", report)


def sample_clusters(x: np.ndarray, assign: np.ndarray, centroids: np.ndarray, n: int, *, seed: int = 0,
                    temperature: float = 1.0, pool_draws: int = 5, mmr_lambda: float = 1.0) -> list[int]:
    """DUQGen's steps 2-3 on a given clustering: positions into ``x``, cluster by cluster (seeded order)."""
    k = len(centroids)
    quota = duqgen_quotas(np.bincount(assign, minlength=k), n)
    rng = np.random.default_rng(seed)
    picked: list[int] = []
    for c in rng.permutation(k):
        if quota[c] == 0:
            continue
        members = np.flatnonzero(assign == c)
        probs = within_cluster_probs(x[members], centroids[c], temperature)
        pool: set[int] = set()
        for draw in range(pool_draws):
            r = np.random.default_rng([seed, int(c), draw])
            pool.update(int(i) for i in r.choice(len(members), size=int(quota[c]), replace=False, p=probs))
        pool_arr = members[np.array(sorted(pool))]
        if len(pool_arr) == quota[c]:
            picked.extend(int(i) for i in pool_arr)
        else:
            nearest = members[int(np.argmin(((x[members] - centroids[c]) ** 2).sum(1)))]
            picked.extend(_mmr(pool_arr, x, int(nearest), int(quota[c]), mmr_lambda))
    return picked


def coverage(assign: np.ndarray, selected: np.ndarray, k: int) -> dict[str, Any]:
    """How well ``selected`` (positions into ``assign``) covers the corpus's clusters.

    ``clusters_hit`` / ``k``; ``entropy`` of the selection's cluster distribution and of the corpus's
    (nats); ``relative_entropy`` = their ratio (1.0: the selection spreads over topics as the corpus
    does); ``max_share``: the largest fraction of the selection in one cluster.
    """
    def ent(counts: np.ndarray) -> float:
        p = counts[counts > 0] / counts.sum()
        return float(-(p * np.log(p)).sum())

    corpus = np.bincount(assign, minlength=k).astype(np.float64)
    sel = np.bincount(assign[np.asarray(selected, dtype=np.int64)], minlength=k).astype(np.float64)
    if sel.sum() == 0:
        return {"clusters_hit": 0, "cluster_fraction": 0.0, "entropy": 0.0, "corpus_entropy": round(ent(corpus), 4),
                "relative_entropy": 0.0, "max_share": 0.0}
    e_sel, e_corp = ent(sel), ent(corpus)
    return {"clusters_hit": int((sel > 0).sum()), "cluster_fraction": round(float((sel > 0).mean()), 4),
            "entropy": round(e_sel, 4), "corpus_entropy": round(e_corp, 4),
            "relative_entropy": round(e_sel / e_corp, 4) if e_corp > 0 else 1.0,
            "max_share": round(float(sel.max() / sel.sum()), 4),
            "log_k": round(math.log(k), 4) if k > 0 else 0.0}
