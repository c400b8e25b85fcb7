"""Every loss against an independent NumPy implementation written with loops and obvious code.

The references work on one list at a time, over its real items only (padding is dropped first),
and average per-list values over all B lists -- the library's documented reduction.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rankstack.losses import get_loss  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    """Shared fixture in tests/conftest.py."""


def log1pexp(x: float) -> float:  # log(1 + e^x), stable
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def lse(xs) -> float:
    xs = list(xs)
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


def gain(y: float) -> float:
    return 2.0 ** max(y, 0.0) - 1.0


def idcg(y, k=None) -> float:
    g = sorted((gain(v) for v in y), reverse=True)
    return sum(gv / math.log2(r + 2) for r, gv in enumerate(g) if k is None or r < k)


def score_ranks(s):
    """1-based ranks by descending score, ties by position."""
    order = sorted(range(len(s)), key=lambda i: (-s[i], i))
    ranks = [0] * len(s)
    for r, i in enumerate(order):
        ranks[i] = r + 1
    return ranks


# ---------------------------------------------------------------- per-list references
def ref_bce(s, y, w):
    return sum(w[i] * (log1pexp(s[i]) - y[i] * s[i]) for i in range(len(s))) / len(s)


def ref_mse(s, y, w):
    return sum(w[i] * (s[i] - y[i]) ** 2 for i in range(len(s))) / len(s)


def ref_ranknet(s, y, w, sigma=1.0):
    terms = [w[i] * log1pexp(-sigma * (s[i] - s[j]))
             for i in range(len(s)) for j in range(len(s)) if y[i] > y[j]]
    return sum(terms) / len(terms) if terms else 0.0


def ref_hinge(s, y, w, margin=1.0):
    terms = [w[i] * max(0.0, margin - (s[i] - s[j]))
             for i in range(len(s)) for j in range(len(s)) if y[i] > y[j]]
    return sum(terms) / len(terms) if terms else 0.0


def ref_lambdarank(s, y, w, sigma=1.0, k=None):
    ideal = idcg(y, k)
    if ideal == 0:
        return 0.0
    r = score_ranks(s)

    def disc(rank):
        return 1.0 / math.log2(1 + rank) if k is None or rank <= k else 0.0

    total = 0.0
    for i in range(len(s)):
        for j in range(len(s)):
            if y[i] > y[j]:
                delta = abs(gain(y[i]) - gain(y[j])) * abs(disc(r[i]) - disc(r[j])) / ideal
                total += w[i] * delta * log1pexp(-sigma * (s[i] - s[j]))
    return total


def ref_lambdaloss(s, y, w, sigma=1.0, mu=10.0):
    ideal = idcg(y)
    if ideal == 0:
        return 0.0
    r = score_ranks(s)

    def D(x):
        return math.log2(1 + x)

    total = 0.0
    for i in range(len(s)):
        for j in range(len(s)):
            if y[i] > y[j]:
                Gi, Gj = gain(y[i]) / ideal, gain(y[j]) / ideal
                gap = abs(r[i] - r[j])
                delta = abs(1 / D(gap) - 1 / D(gap + 1))
                rho = abs(1 / D(r[i]) - 1 / D(r[j]))
                p = 1 / (1 + math.exp(-sigma * (s[i] - s[j])))
                total += -w[i] * (mu * delta + rho) * abs(Gi - Gj) * math.log2(p)
    return total


def ref_auc_list(s, y, w, sigma=1.0):
    terms = [w[p] * log1pexp(-sigma * (s[p] - s[n]))
             for p in range(len(s)) if y[p] > 0 for n in range(len(s)) if y[n] <= 0]
    return sum(terms) / len(terms) if terms else 0.0


def ref_listnet(s, y, w, temperature=1.0, target="linear"):
    y = [max(v, 0.0) for v in y]
    if not any(v > 0 for v in y):
        return 0.0
    if target == "linear":
        p = [v / sum(y) for v in y]
    else:
        z = lse(y)
        p = [math.exp(v - z) for v in y]
    z = lse([x / temperature for x in s])
    return -sum(w[i] * p[i] * (s[i] / temperature - z) for i in range(len(s)))


def _label_order(s, y):
    return sorted(range(len(s)), key=lambda i: (-y[i], -s[i], i))


def ref_listmle(s, y, w):
    if not any(v > 0 for v in y):
        return 0.0
    order = _label_order(s, y)
    total = 0.0
    for k, i in enumerate(order):
        total += w[i] * (lse([s[j] for j in order[k:]]) - s[i])
    return total


def ref_plistmle(s, y, w):
    if not any(v > 0 for v in y):
        return 0.0
    order = _label_order(s, y)
    n = len(order)
    total = 0.0
    for k, i in enumerate(order, start=1):
        alpha = (2.0 ** (n - k) - 1) / 2.0 ** (n - 1)
        total += alpha * w[i] * (lse([s[j] for j in order[k - 1:]]) - s[i])
    return total


def ref_approxndcg(s, y, w, temperature=0.1):
    ideal = idcg(y)
    if ideal == 0:
        return 0.0
    dcg = 0.0
    for i in range(len(s)):
        rank = 1.0 + sum(1 / (1 + math.exp(-(s[j] - s[i]) / temperature)) for j in range(len(s)) if j != i)
        dcg += w[i] * gain(y[i]) / math.log2(1 + rank)
    return 1.0 - dcg / ideal


def ref_neuralndcg(s, y, w, temperature=1.0, k=None, sinkhorn_iters=50):
    ideal = idcg(y, k)
    if ideal == 0:
        return 0.0
    n = len(s)
    P = np.zeros((n, n))
    for r in range(1, n + 1):
        row = [((n + 1 - 2 * r) * s[j] - sum(abs(s[j] - s[m]) for m in range(n))) / temperature
               for j in range(n)]
        z = lse(row)
        P[r - 1] = [math.exp(v - z) for v in row]
    for _ in range(sinkhorn_iters):
        P = P / np.maximum(P.sum(0, keepdims=True), 1e-300)
        P = P / np.maximum(P.sum(1, keepdims=True), 1e-300)
        if np.abs(P.sum(0) - 1).max() < 1e-6:
            break
    g = [w[i] * gain(y[i]) for i in range(n)]
    dcg = 0.0
    for r in range(n):
        if k is None or r < k:
            dcg += sum(P[r, j] * g[j] for j in range(n)) / math.log2(r + 2)
    return 1.0 - dcg / ideal


def ref_infonce(s, y, w, temperature=0.05):
    pos = [i for i in range(len(s)) if y[i] > 0]
    neg = [j for j in range(len(s)) if y[j] <= 0]
    if not pos:
        return 0.0
    terms = []
    for p in pos:
        logits = [s[p] / temperature] + [s[j] / temperature for j in neg]
        terms.append(w[p] * (lse(logits) - s[p] / temperature))
    return sum(terms) / len(terms)


def ref_margin_mse(s, t, w, pairs="first"):
    n = len(s)
    if pairs == "first":
        pp = [(0, j) for j in range(1, n)]
    else:
        pp = [(i, j) for i in range(n) for j in range(i + 1, n)]
    if not pp:
        return 0.0
    return sum(w[i] * w[j] * ((s[i] - s[j]) - (t[i] - t[j])) ** 2 for i, j in pp) / len(pp)


def ref_listwise_kl(s, t, w, temperature=1.0):
    if not len(s):
        return 0.0
    zt = lse([v / temperature for v in t])
    zs = lse([v / temperature for v in s])
    total = 0.0
    for i in range(len(s)):
        logp = t[i] / temperature - zt
        logq = s[i] / temperature - zs
        total += w[i] * math.exp(logp) * (logp - logq)
    return total


# name, params, reference, label kind
CASES = [
    ("bce", {}, ref_bce, "binary"),
    ("mse", {}, ref_mse, "graded"),
    ("ranknet", {"sigma": 1.7}, ref_ranknet, "graded"),
    ("hinge", {"margin": 0.5}, ref_hinge, "graded"),
    ("lambdarank", {"sigma": 1.0}, ref_lambdarank, "graded"),
    ("lambdarank", {"sigma": 0.5, "k": 3}, ref_lambdarank, "graded"),
    ("lambdaloss", {"sigma": 1.0, "mu": 10.0}, ref_lambdaloss, "graded"),
    ("lambdaloss", {"sigma": 2.0, "mu": 0.0}, ref_lambdaloss, "graded"),
    ("auc", {"sigma": 1.3}, ref_auc_list, "graded"),
    ("listnet", {}, ref_listnet, "graded"),
    ("listnet", {"temperature": 0.5, "target": "softmax"}, ref_listnet, "graded"),
    ("listmle", {}, ref_listmle, "graded"),
    ("plistmle", {}, ref_plistmle, "graded"),
    ("approxndcg", {"temperature": 0.3}, ref_approxndcg, "graded"),
    ("neuralndcg", {"temperature": 1.0}, ref_neuralndcg, "graded"),
    ("neuralndcg", {"temperature": 0.5, "k": 3, "sinkhorn_iters": 10}, ref_neuralndcg, "graded"),
    ("infonce", {"temperature": 0.5}, ref_infonce, "graded"),
    ("margin_mse", {}, ref_margin_mse, "teacher"),
    ("margin_mse", {"pairs": "all"}, ref_margin_mse, "teacher"),
    ("listwise_kl", {"temperature": 2.0}, ref_listwise_kl, "teacher"),
]


def make_batch(rng: np.random.Generator, kind: str, B: int = 5, L: int = 7):
    s = rng.normal(size=(B, L)) * 2
    if kind == "binary":
        y = (rng.random((B, L)) < 0.35).astype(float)
    elif kind == "graded":
        y = rng.integers(0, 4, size=(B, L)).astype(float)
    else:
        y = rng.normal(size=(B, L)) * 3
    m = rng.random((B, L)) < 0.8
    m[:, 0] = True
    if kind != "teacher":
        y[0] = 0.0  # a list without any positive
    m[1, 1:] = False  # a list with a single real item
    w = rng.uniform(0.2, 3.0, size=(B, L))
    return s, y, m, w


def reference_value(ref, params, s, y, m, w) -> float:
    total = 0.0
    for b in range(s.shape[0]):
        keep = m[b]
        total += ref(list(s[b, keep]), list(y[b, keep]), list(w[b, keep]), **params)
    return total / s.shape[0]


@pytest.mark.parametrize("name,params,ref,kind", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
@pytest.mark.parametrize("weighted", [False, True])
def test_matches_numpy_reference(name, params, ref, kind, weighted):
    rng = np.random.default_rng(zlib.crc32(f"{name}{weighted}{params}".encode()))
    loss = get_loss(name, **params)
    for _ in range(3):
        s, y, m, w = make_batch(rng, kind)
        if not weighted:
            w = np.ones_like(w)
        expected = reference_value(ref, params, s, y, m, w)
        got = loss(torch.tensor(s), torch.tensor(y), torch.tensor(m),
                   torch.tensor(w) if weighted else None)
        assert got.dtype == torch.float64
        # Sinkhorn stops at tolerance 1e-6 for the whole batch in torch, per list here.
        tol = 1e-5 if name == "neuralndcg" else 1e-9
        assert float(got) == pytest.approx(expected, rel=tol, abs=tol)


def test_auc_batch_scope_matches_reference():
    rng = np.random.default_rng(3)
    s, y, m, w = make_batch(rng, "graded")
    pos = [(b, i) for b in range(s.shape[0]) for i in range(s.shape[1]) if m[b, i] and y[b, i] > 0]
    neg = [(b, i) for b in range(s.shape[0]) for i in range(s.shape[1]) if m[b, i] and y[b, i] <= 0]
    expected = sum(w[p] * log1pexp(-(s[p] - s[n])) for p in pos for n in neg) / (len(pos) * len(neg))
    got = get_loss("auc", scope="batch")(torch.tensor(s), torch.tensor(y), torch.tensor(m), torch.tensor(w))
    assert float(got) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("name,params,ref,kind", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_gradients_match_finite_differences(name, params, ref, kind):
    """Analytic gradients equal central differences of the loss (rank weights are piecewise constant)."""
    rng = np.random.default_rng(11)
    s, y, m, w = make_batch(rng, kind, B=3, L=5)
    loss = get_loss(name, **params)
    y_t, m_t, w_t = torch.tensor(y), torch.tensor(m), torch.tensor(w)
    s_t = torch.tensor(s, requires_grad=True)
    loss(s_t, y_t, m_t, w_t).backward()
    eps = 1e-6
    num = np.zeros_like(s)
    for b in range(s.shape[0]):
        for i in range(s.shape[1]):
            hi, lo = s.copy(), s.copy()
            hi[b, i] += eps
            lo[b, i] -= eps
            num[b, i] = (float(loss(torch.tensor(hi), y_t, m_t, w_t))
                         - float(loss(torch.tensor(lo), y_t, m_t, w_t))) / (2 * eps)
    np.testing.assert_allclose(s_t.grad.numpy(), num, rtol=1e-4, atol=1e-6)
