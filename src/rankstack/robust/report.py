"""Robustness reports: ``results.json``, one CSV per table and a self-contained ``report.html``.

Plots are matplotlib (Agg) figures embedded as inline SVG, so the HTML opens anywhere offline:
nDCG@10 drop per perturbation (bars with the per-query spread), rank-gain histograms per victim,
and the certified share of the top 10 against the radius.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["to_csv", "render_html", "drop_plot", "rank_gain_plot", "certified_plot"]


def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return ""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in keys})
    return buf.getvalue()


def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.find("<svg"):]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "rankstack"  # stable ids: the same results give the same file
    return plt


def drop_plot(rows: Sequence[Mapping[str, Any]], collection: str) -> str:
    """Mean nDCG@10 drop per perturbation, one bar per pipeline, error bars = per-query std."""
    plt = _plt()
    rows = [r for r in rows if r["collection"] == collection]
    perts = list(dict.fromkeys(r["perturbation"] for r in rows))
    pipes = list(dict.fromkeys(r["pipeline"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(6, len(perts) * 1.1), 3.4))
    width = 0.8 / max(len(pipes), 1)
    for j, p in enumerate(pipes):
        vals = {r["perturbation"]: r for r in rows if r["pipeline"] == p}
        xs = [i + j * width for i in range(len(perts))]
        ax.bar(xs, [vals[x]["mean_drop"] if x in vals else 0 for x in perts], width,
               yerr=[vals[x]["std_drop"] if x in vals else 0 for x in perts], capsize=2, label=p)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(perts))], perts, rotation=30, ha="right")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_ylabel("nDCG@10 drop (mean ± sd)")
    ax.set_title(f"{collection}: query perturbations")
    ax.legend(fontsize=7)
    return _svg(fig)


def rank_gain_plot(rows: Sequence[Mapping[str, Any]]) -> str:
    """Histogram of rank gains (rank before - after) per victim, all methods and budgets pooled."""
    plt = _plt()
    victims = list(dict.fromkeys(r["victim"] for r in rows if r["rank_before"] is not None))
    fig, axes = plt.subplots(1, max(len(victims), 1), figsize=(3 * max(len(victims), 1), 2.6), squeeze=False)
    for ax, v in zip(axes[0], victims):
        gains = [r["rank_before"] - r["rank_after"] for r in rows
                 if r["victim"] == v and r["rank_before"] is not None and r["rank_after"] is not None]
        ax.hist(gains, bins=20)
        ax.set_title(v, fontsize=9)
        ax.set_xlabel("rank gain")
    return _svg(fig)


def certified_plot(summaries: Sequence[Mapping[str, Any]]) -> str:
    """Certified share of the top 10 against the radius (with and without the Hoeffding bound)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 3))
    for s in summaries:
        for key, style in (("certified_share", "-o"), ("certified_share_point", "--x")):
            rs = sorted(int(r) for r in s[key])
            ax.plot(rs, [s[key][str(r)] for r in rs], style,
                    label=f"{s['collection']} ({'95% bound' if key == 'certified_share' else 'point estimate'})")
    ax.set_xlabel("radius (word substitutions)")
    ax.set_ylabel("certified share of top 10")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7)
    return _svg(fig)


def _table(rows: Sequence[Mapping[str, Any]], cols: Sequence[str]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4f}"
        return html.escape("" if v is None else str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{fmt(r.get(c))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(payload: Mapping[str, Any], plots: bool = True) -> str:
    """One self-contained page (inline CSS and SVG) for whatever sections ``payload`` holds."""
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>rankstack robustness report</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;"
             "font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
             "th{background:#eee}</style></head><body><h1>Robustness report</h1>",
             f"<p>{html.escape(str(payload.get('note', '')))}</p>"]
    if payload.get("shift"):
        cols = ["pipeline", *list(dict.fromkeys(k for r in payload["shift"] for k in r if k != "pipeline"))]
        parts += ["<h2>Distribution shift (nDCG@10)</h2>", _table(payload["shift"], cols)]
    if payload.get("perturbation"):
        rows = payload["perturbation"]
        parts += ["<h2>Query perturbations</h2>",
                  _table(rows, ["collection", "pipeline", "perturbation", "queries", "changed_queries", "clean",
                                "perturbed", "mean_drop", "std_drop", "share_drop_gt_0.1"])]
        if plots:
            parts += [drop_plot(rows, c) for c in dict.fromkeys(r["collection"] for r in rows)]
    if payload.get("attack"):
        parts += ["<h2>Attacks</h2>", _table(payload["attack"]["summary"],
                                             ["collection", "victim", "method", "budget", "targets", "success_rate",
                                              "top10_before", "mean_rank_gain", "mean_size", "max_size", "mean_ppl_ratio"])]
        if payload["attack"].get("surrogates"):
            parts += ["<h3>Surrogates</h3>", _table(payload["attack"]["surrogates"],
                                                    ["collection", "victim", "queries", "steps", "seconds", "agreement"])]
        if plots:
            parts.append(rank_gain_plot(payload["attack"]["rows"]))
    if payload.get("certify"):
        sums = payload["certify"]["summary"]
        flat = [{"collection": s["collection"], "queries": s["queries"], "ndcg_raw": s["ndcg_raw"],
                 "ndcg_smoothed": s["ndcg_smoothed"], "ndcg_cost": s["ndcg_cost"],
                 **{k: s.get("smoothing", {}).get(k) for k in ("bound", "alpha", "samples", "drop_masked", "eps_mean")},
                 **{f"cert@{r}": v for r, v in s["certified_share"].items()},
                 **{f"point@{r}": v for r, v in s["certified_share_point"].items()}} for s in sums]
        parts += ["<h2>Certified top-10 (randomized smoothing)</h2>", _table(flat, list(flat[0]) if flat else [])]
        if plots:
            parts.append(certified_plot(sums))
    parts.append("</body></html>")
    return "\n".join(parts)
