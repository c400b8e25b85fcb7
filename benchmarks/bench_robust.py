"""Robustness of the rankstack stack: query perturbations, distribution shift, attacks, certification.

Question: how much do BM25, dense MiniLM, their RRF hybrid and the scifact-trained cross-encoder lose
under seeded query perturbations; how does the reranker trained on scifact travel to other
collections; how often do budgeted black-box attacks lift a rank 51-100 document into the top 10;
and what share of the reranker's top 10 a CertDR-style smoothing certifies, at what nDCG cost.

Runs the example configs through the recipe (one report folder each) and writes the tables as
markdown. Subsets are deterministic (first N judged test queries by id) and named in the tables.

    python benchmarks/bench_robust.py --out out/robust-bench               # run every example, then tables
    python benchmarks/bench_robust.py --collect out/robust-bench/* --md benchmarks/robust_tables.md
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

RUNS = {  # folder name -> (verb, example file, extra flags)
    "perturb-scifact": ("perturb", "examples/robust_perturb.toml", ["--collections", "scifact"]),
    "perturb-cranfield": ("perturb", "examples/robust_perturb.toml", ["--collections", "cranfield"]),
    "shift": ("shift", "examples/robust_shift.toml", []),
    "attack-first": ("attack", "examples/robust_attack.toml", ["--victims", "bm25", "dense", "hybrid"]),
    "attack-reranker": ("attack", "examples/robust_attack.toml", ["--victims", "reranker"]),
    "certify": ("certify", "examples/robust_certify.toml", []),
}


def f4(v) -> str:
    return "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def tables(payloads: list[dict]) -> str:
    out = []
    pert = [r for p in payloads for r in p.get("perturbation", [])]
    if pert:
        out += ["## Query perturbations (nDCG@10; drop = clean - perturbed, per query)", "",
                "| collection | pipeline | perturbation | N | changed | clean | perturbed | mean drop | sd | share drop > 0.1 |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for r in pert:
            out.append(f"| {r['collection']} | {r['pipeline']} | {r['perturbation']} | {r['queries']} | "
                       f"{r['changed_queries']:.2f} | {r['clean']:.4f} | {r['perturbed']:.4f} | {r['mean_drop']:+.4f} | "
                       f"{r['std_drop']:.4f} | {r['share_drop_gt_0.1']:.2f} |")
        out.append("")
    shift = [r for p in payloads for r in p.get("shift", [])]
    if shift:
        colls = [k for k in shift[0] if k != "pipeline" and not k.endswith("_queries")]
        out += ["## Distribution shift (nDCG@10; the reranker was trained on scifact)", "",
                "| pipeline | " + " | ".join(f"{c} (N={shift[0][c + '_queries']})" for c in colls) + " |",
                "|---|" + "---|" * len(colls)]
        out += ["| " + r["pipeline"] + " | " + " | ".join(f4(r[c]) for c in colls) + " |" for r in shift]
        out.append("")
    att = [r for p in payloads for r in p.get("attack", {}).get("summary", [])]
    if att:
        out += ["## Attacks (target drawn from victim ranks 51-100; success = victim rank <= 10)", "",
                "| victim | method | budget | targets | success | top 10 before attack | mean rank gain | mean size | max size | ppl proxy ratio |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for r in sorted(att, key=lambda r: (r["victim"], r["method"], r["budget"])):
            out.append(f"| {r['victim']} | {r['method']} | {r['budget']} | {r['targets']} | {r['success_rate']:.2f} | "
                       f"{f4(r.get('top10_before'))} | {f4(r['mean_rank_gain'])} | {r['mean_size']:.3f} | {r['max_size']:.3f} | "
                       f"{f4(r['mean_ppl_ratio'])} |")
        sur = [s for p in payloads for s in p.get("attack", {}).get("surrogates", [])]
        out += ["", "| surrogate of | imitation queries | steps | seconds | Spearman with victim (attacked queries, top 30) |",
                "|---|---|---|---|---|"]
        out += [f"| {s['victim']} | {s['queries']} | {s['steps']} | {s['seconds']} | {f4(s['agreement'])} |" for s in sur]
        out.append("")
    cert = [s for p in payloads for s in p.get("certify", {}).get("summary", [])]
    if cert:
        out += ["## Certified top 10 (randomized smoothing)", "",
                "| collection | N | candidates | smoothing | nDCG@10 raw | smoothed | cost | certified r=1/2/3 (confidence "
                "bound, simultaneous per query) | r=1/2/3 (point estimate) |", "|---|---|---|---|---|---|---|---|---|"]
        for s in cert:
            sm = s["smoothing"]
            # reports before the union bound / Bernstein change: per-document Hoeffding at alpha, [MASK]s scored
            bound = sm.get("bound", "hoeffding (per document)")
            eps = sm["hoeffding_eps"] if sm.get("eps_mean") is None else sm["eps_mean"]
            drop = ", [MASK]s dropped" if sm.get("drop_masked") else ""
            out.append(f"| {s['collection']} | {s['queries']} | {s['depth']} | {sm['mode']} rate {sm['rate']}{drop}, "
                       f"{sm['samples']} samples, {1 - sm['alpha']:.0%} {bound} (mean eps {eps:.2f}) | {s['ndcg_raw']:.4f} | "
                       f"{s['ndcg_smoothed']:.4f} | {s['ndcg_cost']:+.4f} | "
                       + "/".join(f"{s['certified_share'][r]:.2f}" for r in ("1", "2", "3")) + " | "
                       + "/".join(f"{s['certified_share_point'][r]:.2f}" for r in ("1", "2", "3")) + " |")
        out.append("")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="run every example into OUT/<name> first")
    ap.add_argument("--collect", nargs="*", type=Path, default=[], help="report folders to tabulate")
    ap.add_argument("--md", type=Path, default=None, help="write the tables here (default: print)")
    args = ap.parse_args()
    folders = list(args.collect)
    if args.out is not None:
        for name, (verb, cfg, extra) in RUNS.items():
            target = args.out / name
            subprocess.run([sys.executable, "-m", "rankstack", "robust", verb, "--config", cfg, *extra,
                            "--out", str(target), "--overwrite"], check=True)
            folders.append(target)
    payloads = [json.loads((f / "results.json").read_text()) for f in folders]
    text = tables(payloads)
    if args.md:
        args.md.write_text(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
