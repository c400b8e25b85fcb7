"""A self-contained HTML report of an experiment: measures table with significance marks and plots.

Why self-contained: a report is mailed, attached to an issue or opened from a CI artefact, with no
server and no network. Plots are matplotlib (Agg backend) figures embedded as inline SVG, styles are
inline, and nothing is fetched. Plots:

- per-query deltas of the first measure against the baseline (sorted bars: where a system wins and
  loses, which a mean hides);
- recall@k curves (how deep each first stage must go before a reranker can find the relevant ones);
- score distributions of relevant vs non-relevant documents in each run's top 100 (how separable and
  how calibrated each run's scores are, which decides between rank and score fusion).
"""

from __future__ import annotations

import html
import io
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.errors import require

__all__ = ["write_report", "render_report"]

log = logging.getLogger(__name__)

T_MARK, PERM_MARK = "\u2020", "\u2021"
COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]


def _plt():
    matplotlib = require("matplotlib", "report", "HTML report plots")
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False,
                         "axes.spines.right": False})
    return plt


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    _plt().close(fig)
    text = buf.getvalue()
    text = text[text.find("<svg"):]  # drop the XML prolog and DOCTYPE: inline SVG in HTML5
    return re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)


def plot_deltas(result: Any) -> str | None:
    """Sorted per-query deltas of the first measure for every run against the baseline."""
    comp = result.comparison
    if comp is None:
        return None
    m = comp.measures[0]
    others = [r for r in comp.runs if r != comp.baseline]
    plt = _plt()
    fig, axes = plt.subplots(len(others), 1, figsize=(8, 2.2 * len(others)), squeeze=False, sharey=True)
    for ax, name in zip(axes[:, 0], others):
        d = np.array(sorted(comp.stats[m][name].per_query_delta.values(), reverse=True))
        colors = np.where(d > 0, "#55a868", np.where(d < 0, "#c44e52", "#bbbbbb"))
        ax.bar(np.arange(len(d)), d, width=1.0, color=colors)
        ax.axhline(0, color="black", linewidth=0.6)
        s = comp.stats[m][name]
        ax.set_title(f"{name} − {comp.baseline}: {m} Δ mean {s.delta:+.4f} "
                     f"(wins {s.wins}, ties {s.ties}, losses {s.losses})", fontsize=9, loc="left")
        ax.set_xlim(-0.5, len(d) - 0.5)
        ax.set_ylabel(f"Δ {m}")
    axes[-1, 0].set_xlabel("queries, sorted by delta")
    fig.tight_layout()
    return _svg(fig)


def plot_recall(result: Any) -> str:
    """Recall@k for k in the experiment's recall depths, one line per run."""
    from rankstack.evaluate import evaluate

    ks = list(result.spec.recall_depths)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for i, (name, run) in enumerate(result.runs.items()):
        ev = evaluate(run, result.qrels, [f"R@{k}" for k in ks])
        ax.plot(ks, [ev.mean[f"R@{k}"] for k in ks], marker="o", markersize=3, label=name,
                color=COLORS[i % len(COLORS)])
    ax.set_xscale("log")
    ax.set_xticks(ks)
    ax.set_xticklabels([str(k) for k in ks])
    ax.set_xlabel("k (log scale)")
    ax.set_ylabel("mean recall@k")
    ax.set_ylim(0, 1.0)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    fig.tight_layout()
    return _svg(fig)


def plot_scores(result: Any, top: int = 100) -> str:
    """Histograms of scores of judged-relevant vs other documents in each run's top ``top``."""
    rel = {(q, d) for q, d, r in zip(result.qrels.qids.tolist(), result.qrels.docids.tolist(),
                                     result.qrels.relevance.tolist()) if r > 0}
    plt = _plt()
    n = len(result.runs)
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax, (name, run) in zip(axes.flat, result.runs.items()):
        cut = run.top_k(top)
        is_rel = np.array([(q, d) in rel for q, d in zip(cut.qids.tolist(), cut.docids.tolist())], dtype=bool)
        scores = cut.scores
        if len(scores):
            bins = np.histogram_bin_edges(scores, bins=40)
            ax.hist(scores[~is_rel], bins=bins, color="#8c8c8c", alpha=0.7, density=True, label="other")
            if is_rel.any():
                ax.hist(scores[is_rel], bins=bins, color="#dd8452", alpha=0.7, density=True, label="relevant")
        ax.set_title(name, fontsize=9, loc="left")
        ax.set_xlabel("score")
        ax.set_yticks([])
    axes.flat[0].legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return _svg(fig)


def _table(result: Any) -> str:
    spec, comp = result.spec, result.comparison
    measures = spec.measures
    best = {m: max(ev.mean[m] for ev in result.evaluations.values()) for m in measures}
    head = "".join(f"<th>{html.escape(m)}</th>" for m in measures)
    wtl = f"<th>W/T/L {html.escape(measures[0])}</th>" if comp is not None else ""
    rows = []
    for name, ev in result.evaluations.items():
        cells = []
        for m in measures:
            value = ev.mean[m] if comp is None else comp.stats[m][name].mean
            marks = ""
            if comp is not None and name != comp.baseline:
                s = comp.stats[m][name]
                marks = (T_MARK if s.t_p_holm < comp.alpha else "") + (PERM_MARK if s.perm_p_holm < comp.alpha else "")
            text = f"{value:.4f}{marks}"
            if np.isclose(value, best[m]):
                text = f"<b>{text}</b>"
            cells.append(f"<td class=num>{text}</td>")
        if comp is not None:
            s = comp.stats[measures[0]][name]
            cells.append("<td class=num>–</td>" if name == comp.baseline else
                         f"<td class=num>{s.wins}/{s.ties}/{s.losses}</td>")
        label = html.escape(name) + (" <i>(baseline)</i>" if name == spec.baseline else "")
        expr = html.escape(spec.pipelines[name])
        how = "cached" if result.cached[name] else f"{result.seconds[name]:.1f} s"
        rows.append(f"<tr><td>{label}</td>{''.join(cells)}<td class=expr><code>{expr}</code></td><td class=num>{how}</td></tr>")
    legend = ""
    if comp is not None:
        legend = (f"<p class=legend>{T_MARK} paired t-test, {PERM_MARK} paired randomization test "
                  f"({comp.permutations} sign flips); Holm-corrected p &lt; {comp.alpha} against "
                  f"<b>{html.escape(comp.baseline)}</b>, over {len(comp.queries)} queries. Best value per "
                  "measure in bold. W/T/L: per-query wins/ties/losses against the baseline.</p>")
    return (f"<table id=measures><thead><tr><th>pipeline</th>{head}{wtl}<th>expression</th><th>time</th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>{legend}")


def _llm_table(result: Any) -> str:
    """Per-pipeline LLM cost (per-query means), for pipelines with an LLM reranker; else nothing."""
    from rankstack.experiment.runner import llm_costs

    rows = []
    for name, run in result.runs.items():
        cost = llm_costs(run).get("llm")
        if not cost:
            continue
        m = cost["mean_per_query"]
        cells = [f"{m.get('prompt_tokens', 0):.0f}", f"{m.get('generated_tokens', 0):.1f}",
                 f"{m.get('seconds', 0):.2f}", f"{m.get('calls', 0):.1f}", f"{cost['total'].get('cache_hits', 0)}"]
        rows.append(f"<tr><td>{html.escape(name)}</td><td>{html.escape(str(cost['strategy']))}</td>"
                    f"<td><code>{html.escape(str(cost['model']))}</code></td>"
                    + "".join(f"<td class=num>{c}</td>" for c in cells) + "</tr>")
    if not rows:
        return ""
    return ("<section><h2>LLM cost</h2><table id=llm-cost><thead><tr><th>pipeline</th><th>strategy</th>"
            "<th>model</th><th>prompt tokens/query</th><th>generated tokens/query</th><th>seconds/query</th>"
            f"<th>calls/query</th><th>cache hits</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
            "<p class=legend>Means over the queries of each run's own computation (a cached run shows the "
            "cost it had when it was computed); cache hits cost no tokens or seconds.</p></section>")


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1000px;
color:#222;padding:0 1em}h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9em}th,td{padding:.3em .7em;border-bottom:1px solid #e5e5e5;
text-align:left;white-space:nowrap}td.expr{white-space:normal}td.num{text-align:right;font-variant-numeric:tabular-nums}code{font-size:.85em;color:#444}
.legend,.meta{color:#555;font-size:.85em}figure{margin:1em 0}figcaption{color:#555;font-size:.85em}
svg{max-width:100%;height:auto}
"""


def render_report(result: Any) -> str:
    """The report as one HTML string."""
    spec = result.spec
    n_queries = len(result.evaluations[spec.baseline].queries)
    figures = []
    deltas = plot_deltas(result)
    if deltas is not None:
        figures.append(("plot-deltas", "Per-query differences against the baseline",
                        f"Each bar is one query's {spec.measures[0]} minus the baseline's; green: better.", deltas))
    figures.append(("plot-recall", "Recall at depth", "Mean recall@k over the evaluated queries.",
                    plot_recall(result)))
    figures.append(("plot-scores", "Score distributions",
                    "Scores of judged-relevant (orange) and other (grey) documents in each run's top 100, "
                    "density-normalised.", plot_scores(result)))
    figs = "".join(f"<section><h2>{html.escape(title)}</h2><figure id={fid}>{svg}<figcaption>"
                   f"{html.escape(caption)}</figcaption></figure></section>"
                   for fid, title, caption, svg in figures)
    files = "".join(f'<li><a href="runs/{html.escape(n)}.trec">runs/{html.escape(n)}.trec</a></li>'
                    for n in result.runs)
    import rankstack

    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{html.escape(spec.title)}</title>"
            f"<meta name=viewport content='width=device-width,initial-scale=1'><style>{CSS}</style></head><body>"
            f"<h1>{html.escape(spec.title)}</h1><p class=meta>collection <b>{html.escape(result.collection.name)}"
            f"</b>, split <b>{html.escape(spec.split)}</b>, {n_queries} evaluated queries, depth {spec.depth}, "
            f"seed {spec.seed}; rankstack {rankstack.__version__}</p>"
            f"<section><h2>Measures</h2>{_table(result)}</section>{_llm_table(result)}{figs}"
            f"<section><h2>Files</h2><ul><li><a href=measures.txt>measures.txt</a></li>"
            f"<li><a href=results.json>results.json</a></li><li><a href=per_query.csv>per_query.csv</a></li>"
            f"{files}</ul></section></body></html>\n")


def write_report(result: Any, path: str | Path) -> Path:
    """Write ``report.html`` atomically; returns its path."""
    from rankstack.storage import atomic_write_text

    path = Path(path)
    atomic_write_text(path, render_report(result))
    log.info("wrote %s", path)
    return path
