"""The robustness tables: query perturbations, distribution shift, attacks and certification.

Each function takes built pipelines/victims and returns plain rows (lists of dicts) that
:mod:`rankstack.robust.report` turns into JSON, CSV and HTML. Per-query nDCG@10 comes from
:func:`rankstack.evaluate.evaluate` (trec_eval semantics); drops are paired per query.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from rankstack.types import Qrels, Queries

__all__ = ["per_query_ndcg", "perturbation_rows", "summarise_drops", "attack_rows", "summarise_attacks",
           "certification_rows", "first_queries"]

log = logging.getLogger(__name__)
MEASURE = "nDCG@10"


def first_queries(queries: Queries, qrels: Qrels, n: int | None) -> Queries:
    """The first ``n`` judged queries by id (a deterministic subset; None: all judged queries)."""
    judged = set(qrels.query_ids)
    ids = sorted(q for q, _ in queries if q in judged)
    if n is not None:
        ids = ids[:n]
    return queries.subset(ids)


def per_query_ndcg(run: Any, qrels: Qrels, queries: Sequence[str]) -> np.ndarray:
    """nDCG@10 per query in ``queries`` order (0 for a query the run does not answer)."""
    from rankstack.evaluate import evaluate

    ev = evaluate(run, qrels.restrict(list(queries)), [MEASURE], missing="zero") if len(run) else None
    vals = ev.per_query[MEASURE] if ev is not None else {}
    return np.array([float(vals.get(q, 0.0)) for q in queries])


def summarise_drops(clean: np.ndarray, perturbed: np.ndarray, threshold: float = 0.1) -> dict[str, float]:
    drop = clean - perturbed
    return {"clean": float(clean.mean()), "perturbed": float(perturbed.mean()), "mean_drop": float(drop.mean()),
            "std_drop": float(drop.std(ddof=1)) if len(drop) > 1 else 0.0,
            "share_drop_gt_0.1": float(np.mean(drop > threshold)), "queries": int(len(drop))}


def perturbation_rows(pipelines: Mapping[str, Any], queries: Queries, qrels: Qrels,
                      perturbations: Sequence[Any], seed: int = 0, collection: str = "",
                      progress: bool = True) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One row per (pipeline, perturbation); also per-query values and the perturbed query texts."""
    from tqdm.auto import tqdm

    from rankstack.robust.perturb import changed_share, perturb_queries

    qids = [q for q, _ in queries]
    variants = {p.name: perturb_queries(queries, p, seed) for p in perturbations}
    rows, detail = [], {"queries": {name: v.to_dict() for name, v in variants.items()}, "per_query": {}}
    bar = tqdm(total=len(pipelines) * (1 + len(variants)), desc=f"perturb {collection}", disable=not progress)
    for pname, pipe in pipelines.items():
        clean = per_query_ndcg(pipe(queries), qrels, qids)
        bar.update(1)
        detail["per_query"][pname] = {"clean": dict(zip(qids, clean.tolist()))}
        for name, variant in variants.items():
            pert = per_query_ndcg(pipe(variant), qrels, qids)
            bar.update(1)
            detail["per_query"][pname][name] = dict(zip(qids, pert.tolist()))
            rows.append({"collection": collection, "pipeline": pname, "perturbation": name,
                         "changed_queries": changed_share([t for _, t in queries], [variant[q] for q in qids]),
                         **summarise_drops(clean, pert)})
    bar.close()
    return rows, detail


def _target_rank(seed: int, qid: str, low: int, high: int, n: int) -> int | None:
    if n < low:
        return None
    rng = np.random.default_rng([seed, zlib.crc32(qid.encode())])
    return int(rng.integers(low, min(high, n) + 1))


def attack_rows(victim: Any, surrogate: Any, queries: Queries, doc_text: Callable[[list[str]], list[str]],
                budgets: Sequence[float], methods: Sequence[str], synonyms: Any, lm: Any, pool: Any,
                defended: Sequence[Any] = (), seed: int = 0, ranks: tuple[int, int] = (51, 100),
                max_doc_words: int = 400, collection: str = "", progress: bool = True) -> list[dict[str, Any]]:
    """Attack one target per query (a seeded rank in ``ranks`` of the victim's list) with every method/budget.

    ``top10_before`` records whether the *unattacked* target already scores into the top 10 of a victim
    (never for the undefended one; a defence that reshuffles rankings can put it there without an attack).

    ``defended`` victims are evaluated on the *same* adversarial documents (crafted against the
    undefended victim's surrogate: a transfer setting).
    """
    from tqdm.auto import tqdm

    from rankstack.robust.attacks import substitution_attack, trigger_attack
    from rankstack.robust.victims import rank_of

    lists = victim.lists(queries)
    for d in defended:
        d.lists(queries)
    rows = []
    for qid, query in tqdm(list(queries), desc=f"attack {victim.name}", disable=not progress):
        docids, scores = lists.get(qid, (np.array([]), np.array([])))
        r = _target_rank(seed, qid, ranks[0], ranks[1], len(docids))
        if r is None:
            continue
        target = str(docids[r - 1])
        others = scores[docids != target]
        words = doc_text([target])[0].split()[:max_doc_words]
        advs = []
        for budget in budgets:
            for method in methods:
                if method == "substitute":
                    advs.append(substitution_attack(surrogate, query, words, budget, synonyms, lm))
                else:
                    advs.append(trigger_attack(surrogate, query, words, budget, pool))
        texts = [" ".join(words)] + [a.text for a in advs]
        for v in [victim, *defended]:
            vl = v.lists(Queries.from_dict({qid: query}))[qid]
            vothers = vl[1][vl[0] != target] if v is not victim else others
            s = v.score_texts(query, texts, qid=qid, docid=target)
            before = rank_of(s[0], vothers)
            for a, sa in zip(advs, s[1:]):
                after = rank_of(sa, vothers)
                rows.append({"collection": collection, "victim": v.name, "defence": v is not victim,
                             "method": a.method, "budget": a.budget, "qid": qid, "docid": target, "list_rank": r,
                             "rank_before": before if not v.partial else None,
                             "rank_after": after if (not v.partial or after <= v.depth) else None,
                             "top10_before": bool(before <= 10),
                             "success": bool(after <= 10), "edits": a.edits, "allowed": a.allowed,
                             "adversarial_text": a.text,
                             "words": len(words), "size": a.edits / max(len(words), 1),
                             "ppl_ratio": lm.perplexity(a.words) / lm.perplexity(words) if lm is not None else None,
                             "surrogate_gain": a.surrogate_after - a.surrogate_before})
    return rows


def summarise_attacks(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Success rate, mean rank gain, mean perturbation size per (collection, victim, method, budget)."""
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["collection"], r["victim"], r["method"], r["budget"]), []).append(r)
    out = []
    for (coll, victim, method, budget), rs in groups.items():
        gains = [r["rank_before"] - r["rank_after"] for r in rs
                 if r["rank_before"] is not None and r["rank_after"] is not None]
        ppl = [r["ppl_ratio"] for r in rs if r["ppl_ratio"] is not None]
        out.append({"collection": coll, "victim": victim, "method": method, "budget": budget, "targets": len(rs),
                    "success_rate": float(np.mean([r["success"] for r in rs])),
                    "top10_before": float(np.mean([r.get("top10_before", False) for r in rs])),
                    "mean_rank_gain": float(np.mean(gains)) if gains else None,
                    "mean_size": float(np.mean([r["size"] for r in rs])),
                    "max_size": float(np.max([r["size"] for r in rs])),
                    "mean_ppl_ratio": float(np.mean(ppl)) if ppl else None})
    return out


def certification_rows(reranker_score: Callable[[str, list[str]], np.ndarray], lists: Mapping[str, tuple],
                       queries: Queries, qrels: Qrels, doc_text: Callable[[list[str]], list[str]], smoothing: Any,
                       synonyms: Any = None, radii: Sequence[int] = (1, 2, 3), k: int = 10, depth: int = 20,
                       seed: int = 0, collection: str = "", progress: bool = True) -> tuple[dict[str, Any], list]:
    """CertDR over each query's top ``depth`` candidates: certified share of the top ``k`` per radius,
    with the simultaneous confidence bound (``smoothing.bound`` at ``smoothing.alpha`` over each query's
    candidates) and with the point estimate, and the clean nDCG@10 of raw vs smoothed order."""
    from tqdm.auto import tqdm

    from rankstack.robust.certify import certified_radii, smoothed_scores, tv_bound
    from rankstack.types import Run

    raw_rows, smooth_rows, per_doc = [], [], []
    rmax = max(radii)
    for qid, query in tqdm(list(queries), desc="certify", disable=not progress):
        docids = lists[qid][0][:depth]
        raw = lists[qid][1][:depth]
        texts = doc_text(docids.tolist())
        rng = np.random.default_rng([seed, zlib.crc32(qid.encode())])
        g, eps = smoothed_scores(lambda ts: reranker_score(query, ts), texts, smoothing, rng, synonyms)
        deltas = np.array([[tv_bound(t.split(), r, smoothing, synonyms) for r in range(rmax + 1)] for t in texts])
        with_ci = certified_radii(g, eps, deltas, k)
        point = certified_radii(g, np.zeros_like(eps), deltas, k)
        order = np.argsort(-g, kind="stable")[:k]
        for pos, i in enumerate(order):
            per_doc.append({"collection": collection, "qid": qid, "docid": str(docids[i]), "rank": pos + 1,
                            "g": float(g[i]), "eps": float(eps[i]), "radius": int(with_ci[pos]),
                            "radius_point": int(point[pos]),
                            "delta": deltas[i].tolist()})
        raw_rows.append((qid, docids, raw))
        smooth_rows.append((qid, docids, g))

    def run_of(rs):
        return Run.concat([Run.from_dict({q: dict(zip(d.tolist(), np.asarray(s, float).tolist()))}) for q, d, s in rs])

    qids = [q for q, _ in queries]
    raw_nd = per_query_ndcg(run_of(raw_rows), qrels, qids)
    sm_nd = per_query_ndcg(run_of(smooth_rows), qrels, qids)
    radius = np.array([d["radius"] for d in per_doc])
    point = np.array([d["radius_point"] for d in per_doc])
    eps_top = np.array([d["eps"] for d in per_doc])
    summary = {"collection": collection, "queries": len(qids), "k": k, "depth": depth,
               "smoothing": {**smoothing.describe(), "hoeffding_eps": smoothing.hoeffding(depth),
                             "eps_mean": float(eps_top.mean()) if len(eps_top) else None,
                             "eps_median": float(np.median(eps_top)) if len(eps_top) else None},
               "ndcg_raw": float(raw_nd.mean()), "ndcg_smoothed": float(sm_nd.mean()),
               "ndcg_cost": float(raw_nd.mean() - sm_nd.mean()),
               "certified_share": {str(r): float(np.mean(radius >= r)) for r in [0, *radii]},
               "certified_share_point": {str(r): float(np.mean(point >= r)) for r in [0, *radii]}}
    return summary, per_doc
