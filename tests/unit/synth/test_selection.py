"""Document selection: DUQGen's quotas, its within-cluster sampling probabilities, coverage, and uniform."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.errors import InputError
from rankstack.synth.selection import (coverage, duqgen_quotas, elbow_k, sample_clusters, select_duqgen,
                                       select_uniform, within_cluster_probs)

pytest.importorskip("faiss")


def blobs(sizes, dim=8, spread=0.05, seed=0):
    """Well-separated clusters: blob c around the unit vector e_c, ``sizes[c]`` points each."""
    rng = np.random.default_rng(seed)
    parts, labels = [], []
    for c, n in enumerate(sizes):
        centre = np.zeros(dim)
        centre[c] = 1.0
        parts.append(centre + spread * rng.standard_normal((n, dim)))
        labels += [c] * n
    return np.vstack(parts).astype(np.float32), np.array(labels)


def test_quotas_are_proportional_with_one_per_cluster():
    q = duqgen_quotas([60, 30, 10], 20)
    assert q.tolist() == [12, 6, 2] and q.sum() == 20  # 1 + floor(17 * share), the rest to the largest
    q = duqgen_quotas([5, 1, 1, 1], 8)
    assert q.sum() == 8 and (q >= 1).all() and q[0] == 5
    assert duqgen_quotas([5, 9, 2], 2).tolist() == [1, 1, 0]  # fewer documents than clusters
    assert duqgen_quotas([3, 3], 100).tolist() == [3, 3]  # never more than a cluster holds


def test_duqgen_takes_each_cluster_its_quota():
    x, labels = blobs([60, 30, 10])
    sel = select_duqgen(x, 20, clusters=3, seed=1)
    assert len(set(sel.indices.tolist())) == 20
    assert sorted(np.bincount(labels[sel.indices], minlength=3).tolist()) == [2, 6, 12]
    assert sel.report["clusters_hit"] == 3 and sel.report["clusters"] == 3
    assert sel.report["relative_entropy"] == pytest.approx(1.0, abs=0.05)


def test_within_cluster_draws_follow_softmax_of_cosine_to_centroid():
    """Over many seeds, the one document drawn from a cluster matches softmax(cos / T) (pool_draws=1)."""
    small = np.zeros((5, 8), dtype=np.float32)
    small[:, 0] = 1.0
    small[:, 1] = [0.0, 0.2, 0.4, 0.6, 0.8]  # growing distance from the cluster's direction
    x = np.vstack([small, np.eye(8, dtype=np.float32)[[2] * 20]])
    assign = np.array([0] * 5 + [1] * 20)
    centroids = np.vstack([small.mean(0), x[5:].mean(0)])
    t = 0.05
    probs = within_cluster_probs(small, centroids[0], t)
    assert probs.argmax() in (1, 2) and probs.min() > 0.02  # not uniform, not degenerate
    counts = np.zeros(5)
    draws = 3000
    for seed in range(draws):
        picked = sample_clusters(x, assign, centroids, 2, seed=seed, temperature=t, pool_draws=1)
        chosen = [i for i in picked if i < 5]
        assert len(chosen) == 1 and len(picked) == 2
        counts[chosen[0]] += 1
    freq = counts / draws
    se = np.sqrt(probs * (1 - probs) / draws)
    assert np.all(np.abs(freq - probs) < 4 * se), (freq, probs)


def test_cluster_proportions_match_cluster_sizes_over_many_draws():
    """Every draw takes each cluster's DUQGen quota, 1 + floor((N - K) * |C| / |D|) (+ the remainder to
    the largest): proportional to size with every cluster represented; the documents vary by seed."""
    rng = np.random.default_rng(0)
    sizes = [50, 25, 15, 10]
    x = rng.standard_normal((100, 6)).astype(np.float32)
    assign = np.repeat(np.arange(4), sizes)
    centroids = np.vstack([x[assign == c].mean(0) for c in range(4)])
    for pool_draws in (1, 5):
        hits = np.zeros(100)
        for seed in range(200):
            picked = sample_clusters(x, assign, centroids, 24, seed=seed, pool_draws=pool_draws)
            assert np.bincount(assign[picked], minlength=4).tolist() == [11, 6, 4, 3] and len(set(picked)) == 24
            hits[picked] += 1
        rate = hits / 200
        if pool_draws == 1:  # plain softmax sampling: every document gets drawn sometimes
            assert rate.min() > 0
        else:  # the pooled draws are cut by MMR (lambda 1) towards the document nearest the centroid
            c = 0
            members = np.flatnonzero(assign == c)
            nearest = members[np.argmin(((x[members] - centroids[c]) ** 2).sum(1))]
            v = x / np.linalg.norm(x, axis=1, keepdims=True)
            sim = v[members] @ v[nearest]
            assert np.corrcoef(sim, rate[members])[0, 1] > 0.5


def test_mmr_pool_keeps_the_quota_and_elbow_finds_the_clusters():
    x, labels = blobs([30, 30, 30], spread=0.02)
    sel = select_duqgen(x, 9, clusters=3, seed=0, pool_draws=5, mmr_lambda=0.5)
    assert np.bincount(labels[sel.indices], minlength=3).tolist() == [3, 3, 3]
    k, sse = elbow_k(x, [1, 2, 3, 4, 5, 6], seed=0)
    assert k == 3 and sse[1] > sse[2] > sse[3]
    sel = select_duqgen(x, 12, seed=0)  # K from the elbow
    assert sel.report["k_chosen_by"] == "elbow" and sel.report["clusters_hit"] == sel.report["clusters"]


def test_coverage_numbers():
    assign = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    cov = coverage(assign, np.array([0, 1]), 2)
    assert cov["clusters_hit"] == 1 and cov["relative_entropy"] == 0.0 and cov["max_share"] == 1.0
    cov = coverage(assign, np.array([0, 4]), 2)
    assert cov["clusters_hit"] == 2 and cov["relative_entropy"] == pytest.approx(1.0)


def test_uniform_and_ineligible_documents():
    sel = select_uniform(10, 4, seed=2)
    assert len(set(sel.indices.tolist())) == 4 and sel.indices.max() < 10
    assert (select_uniform(10, 4, seed=2).indices == sel.indices).all()
    assert sorted(select_uniform(3, 10).indices.tolist()) == [0, 1, 2]
    with pytest.raises(InputError, match="empty corpus"):
        select_uniform(0, 5)
    x, _ = blobs([10, 10])
    eligible = np.ones(20, dtype=bool)
    eligible[:10] = False
    sel = select_duqgen(x, 5, clusters=2, eligible=eligible)
    assert (sel.indices >= 10).all() and len(sel.indices) == 5
    with pytest.raises(InputError, match="no document"):
        select_duqgen(x, 5, eligible=np.zeros(20, dtype=bool))
