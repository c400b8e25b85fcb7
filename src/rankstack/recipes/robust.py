"""Robustness study (``rankstack robust shift|perturb|attack|certify|study``): one typed config, one TOML.

Why a recipe: the command line and the TOML files (``examples/robust_*.toml``) run the same workflow
with the same defaults, declared once in :class:`RobustConfig` (TOML keys = field names; the
``pipelines`` table maps a name to a pipeline expression). The methods live in
:mod:`rankstack.robust`; this module builds pipelines and victims per collection, runs the sections
asked for and writes the output folder as a ``robust-report`` artefact (``results.json``, one CSV per
table, ``report.html``), crash-safely and never over anything that is not an earlier report.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rankstack.errors import InputError
from rankstack.recipes.config import from_mapping, option, to_dict

__all__ = ["RobustConfig", "SECTIONS", "load_config", "run", "RobustOutcome", "AugmentConfig", "run_augment"]

log = logging.getLogger(__name__)
SECTIONS = ("shift", "perturb", "attack", "certify")
KIND = "robust-report"
DEFAULT_MODEL = ".cache/models/ce-scifact-v2"
DEFAULT_PIPELINES = {
    "bm25": "bm25 % 100",
    "dense": "dense % 100",
    "hybrid": "fuse(bm25, dense, method=rrf, k=60) % 100",
    "reranker": f"bm25 % 20 >> reranker(model='{DEFAULT_MODEL}', threads=1)",
}
VICTIMS = ("bm25", "dense", "hybrid", "reranker")


@dataclass(frozen=True)
class RobustConfig:
    """Everything that defines a robustness run (recorded in results.json)."""

    collections: list[str] = option(["scifact"], metavar="NAME", help="collections (BEIR folders or names under "
                                                                      "the data root) for perturb/attack/certify")
    shift_collections: list[str] = option(["scifact", "cranfield", "cisi", "msmarco_dl19_subset"], metavar="NAME",
                                          help="collections of the distribution-shift table")
    split: str = option("test", help="query split evaluated")
    data_root: Path | None = option(None, help="data root (default: $RANKSTACK_DATA or ../shared/data)")
    cache_dir: Path | None = option(Path(".cache/rankstack"), help="index/embedding cache (none: no cache)")
    pipelines: dict[str, str] = option(dict(DEFAULT_PIPELINES), help="name -> pipeline expression (TOML table)")
    queries: int | None = option(30, help="first N judged queries by id (none: all); the clean figure uses the "
                                          "same N")
    perturbations: list[str] = option(["typo_swap", "typo_drop", "typo_insert", "typo_keyboard", "casing",
                                       "word_order", "stopwords", "synonym"], help="query perturbations "
                                                                                   "(paraphrase needs --llm)")
    typo_words: int = option(1, help="words edited per query by each typo/synonym perturbation")
    llm: str | None = option(None, help="LLM for paraphrases, e.g. 'smollm2' (none: no paraphrase)")
    victims: list[str] = option(list(VICTIMS), help="attack victims: bm25, dense, hybrid, reranker")
    reranker_model: Path = option(Path(DEFAULT_MODEL), help="the trained cross-encoder (victim, certify)")
    budgets: list[float] = option([0.05, 0.15], help="attack budgets: share of document words changed")
    methods: list[str] = option(["substitute", "trigger"], help="attack methods")
    attack_queries: int = option(20, help="attacked queries (first N judged by id), one target each")
    target_ranks: list[int] = option([51, 100], help="the target is drawn (seeded) from these victim ranks")
    imitation_queries: int = option(30, help="queries whose victim rankings train the surrogate")
    imitation_depth: int = option(30, help="victim ranks imitated per query")
    imitation_epochs: int = option(4, help="surrogate training epochs")
    defences: list[str] = option(["smoothing"], help="defences evaluated against the attacks: smoothing")
    smoothing_rate: float = option(0.3, help="CertDR: probability a word is resampled")
    smoothing_mode: str = option("mask", choices=["mask", "synonym"], help="replacement: [MASK] or a neighbour")
    smoothing_samples: int = option(16, help="Monte-Carlo samples per document")
    smoothing_drop_masked: bool = option(True, help="mask mode: score the smoothed document without its [MASK] "
                                                    "tokens (valid, ~1/(1-rate) cheaper)")
    smoothing_bound: str = option("best", choices=["hoeffding", "bernstein", "best"],
                                  help="Monte-Carlo confidence bound (best: per document the smaller of "
                                       "Hoeffding and empirical Bernstein, each at alpha/2)")
    smoothing_alpha: float = option(0.05, help="the bounds of one query's candidates hold together with "
                                               "probability 1 - alpha (union bound)")
    certify_queries: int = option(15, help="queries certified (first N judged by id)")
    certify_depth: int = option(20, help="candidates (BM25 -> reranker) smoothed per query")
    radii: list[int] = option([1, 2, 3], help="radii (word substitutions) reported")
    seed: int = option(0, help="random seed")
    threads: int = option(1, help="torch threads")
    out: Path | None = option(None, help="output folder (a robust-report artefact)")
    overwrite: bool = option(False, help="replace an earlier report at --out")

    def __post_init__(self) -> None:
        from rankstack.robust.perturb import PERTURBATIONS

        for p in self.perturbations:
            if p not in PERTURBATIONS:
                from rankstack.errors import UnknownComponentError

                raise UnknownComponentError(p, "perturbation", list(PERTURBATIONS))
        if "paraphrase" in self.perturbations and not self.llm:
            raise InputError("perturbation 'paraphrase' needs an LLM", fix="set llm = \"smollm2\" or drop it")
        for v in self.victims:
            if v not in VICTIMS:
                raise InputError(f"unknown victim {v!r}", fix=f"choose from {', '.join(VICTIMS)}")
        for m in self.methods:
            if m not in ("substitute", "trigger"):
                raise InputError(f"unknown attack method {m!r}", fix="choose substitute or trigger")
        for b in self.budgets:
            if not 0 < b <= 1:
                raise InputError(f"budget {b} is not a share in (0, 1]")
        for d in self.defences:
            if d != "smoothing":
                raise InputError(f"unknown defence {d!r}", fix="choose smoothing (perturbation-aware training: "
                                                                "pass its model as reranker_model)")
        for name in ("queries", "attack_queries", "imitation_queries", "certify_queries"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise InputError(f"{name} must be >= 1, got {v}")
        from rankstack.robust.bounds import BOUNDS

        if self.smoothing_bound not in BOUNDS:
            raise InputError(f"unknown smoothing_bound {self.smoothing_bound!r}",
                             fix="choose hoeffding, bernstein or best")
        if not 0 < self.smoothing_alpha < 1:
            raise InputError(f"smoothing_alpha must be in (0, 1), got {self.smoothing_alpha}")
        if len(self.target_ranks) != 2 or not 11 <= self.target_ranks[0] <= self.target_ranks[1]:
            raise InputError(f"target_ranks must be [low, high] with 11 <= low <= high, got {self.target_ranks}")


def load_config(path: str | Path) -> RobustConfig:
    """A RobustConfig from a TOML file (top-level keys as :class:`RobustConfig`)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    from rankstack.data.textfile import check_file

    p = check_file(path, "robustness config")
    try:
        d = tomllib.loads(p.read_text("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid TOML ({exc})", path=p) from None
    return from_mapping(RobustConfig, d, source=str(p))


# ----------------------------------------------------------------------------- building blocks
class _Env:
    """One collection's context, pipelines and victims, built lazily and shared by the sections."""

    def __init__(self, name: str, cfg: RobustConfig) -> None:
        from rankstack.data.beir import Collection
        from rankstack.registry import Context

        self.cfg, self.name = cfg, name
        self.collection = Collection(name, cfg.data_root)
        self.ctx = Context(collection=self.collection, cache_dir=cfg.cache_dir, seed=cfg.seed)
        self._stages: dict[str, Any] = {}
        self._victims: dict[str, Any] = {}
        self._docs: dict[str, str] | None = None

    def doc_text(self, docids: list[str]) -> list[str]:
        if self._docs is None:
            self._docs = {d.docid: d.contents for d in self.collection.corpus()}
        return [self._docs[d] for d in docids]

    def pipeline(self, name: str):
        if name not in self._stages:
            from rankstack.pipeline.expression import parse_pipeline

            self._stages[name] = parse_pipeline(self.cfg.pipelines[name], self.ctx)
        return self._stages[name]

    def retriever(self, name: str):
        key = "_" + name
        if key not in self._stages:
            from rankstack.registry import build

            self._stages[key] = build(name, context=self.ctx)
        return self._stages[key]

    def reranker(self):
        if "_ce" not in self._stages:
            from rankstack.rerank.cross_encoder import CrossEncoderReranker

            self._stages["_ce"] = CrossEncoderReranker(str(self.cfg.reranker_model), documents=self.collection,
                                                       threads=self.cfg.threads)
        return self._stages["_ce"]

    def victim(self, name: str, depth: int = 100):
        key = f"{name}@{depth}"
        if key not in self._victims:
            from rankstack.robust import victims as V

            if name == "bm25":
                v = V.BM25Victim(self.retriever("bm25"), self.collection, depth)
            elif name == "dense":
                v = V.DenseVictim(self.retriever("dense"), depth)
            elif name == "hybrid":
                v = V.HybridVictim(self.victim("bm25", depth), self.victim("dense", depth), depth=depth)
            else:
                v = V.RerankerVictim(self.victim("bm25", depth), self.reranker(), self.collection, depth)
            self._victims[key] = v
        return self._victims[key]

    def queries(self, n: int | None, split: str | None = None):
        from rankstack.robust.evaluation import first_queries

        split = split or self.cfg.split
        return first_queries(self.collection.queries(split), self.collection.qrels(split), n)


def _smoothing(cfg: RobustConfig):
    from rankstack.robust.certify import Smoothing

    return Smoothing(rate=cfg.smoothing_rate, mode=cfg.smoothing_mode, samples=cfg.smoothing_samples,
                     alpha=cfg.smoothing_alpha, bound=cfg.smoothing_bound, drop_masked=cfg.smoothing_drop_masked)


def _synonyms():
    from rankstack.robust.synonyms import minilm_neighbours

    return minilm_neighbours()


def _paraphraser(cfg: RobustConfig):
    from rankstack.llm.base import Chat
    from rankstack.llm.models import load_backend

    backend = load_backend(cfg.llm, cache_dir=cfg.cache_dir, threads=cfg.threads)

    def para(text: str, rng) -> str:
        prompt = Chat.user("Rewrite this search query using different words but the same meaning. "
                           f"Answer with the rewritten query only.\nQuery: {text}")
        out = backend.generate([prompt], max_new_tokens=40, temperature=0.7,
                               seed=int(rng.integers(2**31)))[0].text.strip().splitlines()
        return (out[0] if out else text).strip().strip('"') or text

    return para


# ----------------------------------------------------------------------------- sections
def run_shift(cfg: RobustConfig, progress: bool = True) -> list[dict[str, Any]]:
    """nDCG@10 of every pipeline on every shift collection (first ``queries`` judged queries)."""
    from rankstack.robust.evaluation import per_query_ndcg

    rows = {p: {"pipeline": p} for p in cfg.pipelines}
    for cname in cfg.shift_collections:
        env = _Env(cname, cfg)
        qs = env.queries(cfg.queries)
        qrels = env.collection.qrels(cfg.split)
        for p in cfg.pipelines:
            rows[p][cname] = float(per_query_ndcg(env.pipeline(p)(qs), qrels, list(qs.qids)).mean())
            log.info("shift %s %s nDCG@10 %.4f", cname, p, rows[p][cname])
        for p in cfg.pipelines:
            rows[p][f"{cname}_queries"] = len(qs)
    return list(rows.values())


def run_perturb(cfg: RobustConfig, progress: bool = True) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from rankstack.robust.evaluation import perturbation_rows
    from rankstack.robust.perturb import get_perturbation

    syn = _synonyms() if "synonym" in cfg.perturbations else None
    para = _paraphraser(cfg) if "paraphrase" in cfg.perturbations else None
    perts = [get_perturbation(p, syn, para, n=cfg.typo_words) for p in cfg.perturbations]
    rows, detail = [], {}
    for cname in cfg.collections:
        env = _Env(cname, cfg)
        qs = env.queries(cfg.queries)
        pipes = {p: env.pipeline(p) for p in cfg.pipelines}
        r, d = perturbation_rows(pipes, qs, env.collection.qrels(cfg.split), perts, cfg.seed, cname, progress)
        rows += r
        detail[cname] = d
    return rows, detail


def run_attack(cfg: RobustConfig, progress: bool = True) -> dict[str, Any]:
    from rankstack.robust.attacks import UnigramLM, trigger_pool
    from rankstack.robust.evaluation import attack_rows, summarise_attacks
    from rankstack.robust.surrogate import agreement, imitate, minilm_surrogate
    from rankstack.robust.victims import SmoothedVictim

    syn = _synonyms()
    rows, surrogates = [], []
    for cname in cfg.collections:
        env = _Env(cname, cfg)
        attack_q = env.queries(cfg.attack_queries)
        split = "train" if "train" in env.collection.splits() and cfg.split != "train" else cfg.split
        pool_q = env.collection.queries(split)
        taken = set(attack_q.qids)
        imit_ids = sorted(q for q, _ in pool_q if q not in taken)[: cfg.imitation_queries]
        imit_q = pool_q.subset(imit_ids)
        lm = UnigramLM(d.contents for d in env.collection.corpus())
        for vname in cfg.victims:
            victim = env.victim(vname, max(100, cfg.target_ranks[1]))
            shallow = env.victim(vname, cfg.imitation_depth)
            model = minilm_surrogate()
            texts = {**dict(imit_q), **dict(attack_q)}
            import torch

            torch.manual_seed(cfg.seed)
            res = imitate(model, shallow.lists(imit_q), texts, env.doc_text, epochs=cfg.imitation_epochs,
                          seed=cfg.seed, threads=cfg.threads, progress=progress)
            res.agreement = agreement(model, {q: (d[:30], s[:30]) for q, (d, s) in victim.lists(attack_q).items()},
                                      texts, env.doc_text)
            surrogates.append({"collection": cname, "victim": vname, "queries": res.queries, "steps": res.steps,
                               "seconds": round(res.seconds, 1), "agreement": res.agreement})
            pool = trigger_pool(model, lm, exclude=())
            defended = []
            if vname == "reranker" and "smoothing" in cfg.defences:
                defended.append(SmoothedVictim(victim, _smoothing(cfg), syn if cfg.smoothing_mode == "synonym"
                                               else None, top_m=10, seed=cfg.seed))
            rows += attack_rows(victim, model, attack_q, env.doc_text, cfg.budgets, cfg.methods, syn, lm, pool,
                                defended, cfg.seed, ranks=(cfg.target_ranks[0], cfg.target_ranks[1]),
                                collection=cname, progress=progress)
    return {"summary": summarise_attacks(rows), "surrogates": surrogates, "rows": rows,
            "synonyms": syn.describe(), "fluency": "unigram perplexity proxy fitted on the collection",
            "smoothing": _smoothing(cfg).describe() if "smoothing" in cfg.defences else None}


def run_certify(cfg: RobustConfig, progress: bool = True) -> dict[str, Any]:
    from rankstack.robust.evaluation import certification_rows

    sm = _smoothing(cfg)
    syn = _synonyms() if cfg.smoothing_mode == "synonym" else None
    summaries, docs = [], []
    for cname in cfg.collections:
        env = _Env(cname, cfg)
        qs = env.queries(cfg.certify_queries)
        victim = env.victim("reranker", cfg.certify_depth)
        s, d = certification_rows(lambda q, ts: victim.score_texts(q, ts), victim.lists(qs), qs,
                                  env.collection.qrels(cfg.split), env.doc_text, sm, syn, cfg.radii, 10,
                                  cfg.certify_depth, cfg.seed, cname, progress)
        summaries.append(s)
        docs += d
    return {"summary": summaries, "documents": docs}


@dataclass
class RobustOutcome:
    payload: dict[str, Any]
    out: Path

    def to_text(self) -> str:
        lines = []
        for r in self.payload.get("shift", []):
            lines.append("shift  " + "  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                               for k, v in r.items()))
        for r in self.payload.get("perturbation", []):
            lines.append(f"{r['collection']:<10} {r['pipeline']:<9} {r['perturbation']:<14} clean {r['clean']:.4f} "
                         f"drop {r['mean_drop']:+.4f} sd {r['std_drop']:.4f} >0.1: {r['share_drop_gt_0.1']:.2f}")
        for r in self.payload.get("attack", {}).get("summary", []):
            lines.append(f"attack {r['collection']} {r['victim']:<20} {r['method']:<10} budget {r['budget']:.2f} "
                         f"success {r['success_rate']:.2f} gain {r['mean_rank_gain']} size {r['mean_size']:.3f}")
        for s in self.payload.get("certify", {}).get("summary", []):
            sm = s.get("smoothing", {})
            lines.append(f"certify {s['collection']} nDCG raw {s['ndcg_raw']:.4f} smoothed {s['ndcg_smoothed']:.4f} "
                         f"certified {s['certified_share']} point {s['certified_share_point']} "
                         f"({sm.get('bound', 'hoeffding')} alpha {sm.get('alpha')}, {sm.get('samples')} samples, "
                         f"drop_masked {sm.get('drop_masked', False)})")
        lines.append(f"report: {self.out / 'report.html'}")
        return "\n".join(lines)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def run(config: RobustConfig, sections: tuple[str, ...] = SECTIONS, *, progress: bool = True) -> RobustOutcome:
    """Run ``sections`` and write the report folder (``robust-report`` artefact)."""
    from rankstack.data.beir import default_data_root
    from rankstack.hardware import torch_threads
    from rankstack.robust.report import render_html, to_csv
    from rankstack.storage import atomic_directory, atomic_write_text, check_output_folder, write_manifest

    if config.out is None:
        raise InputError("the robustness run needs an output folder", fix="pass --out DIR (or out = \"DIR\")")
    bad = [s for s in sections if s not in SECTIONS]
    if bad:
        raise InputError(f"unknown section(s) {bad}", fix=f"choose from {', '.join(SECTIONS)}")
    from rankstack.data.beir import resolve_collection

    root = Path(config.data_root) if config.data_root else default_data_root()
    names = set(config.collections) | (set(config.shift_collections) if "shift" in sections else set())
    inputs = [root, *(resolve_collection(n, config.data_root) for n in sorted(names))]
    out = Path(config.out)
    check_output_folder(out, overwrite=config.overwrite, inputs=inputs, kind=KIND)
    payload: dict[str, Any] = {"config": to_dict(config), "sections": list(sections),
                               "note": f"sections {', '.join(sections)}; first-N judged queries by id; seed "
                                       f"{config.seed}"}
    with torch_threads(config.threads):
        if "shift" in sections:
            payload["shift"] = run_shift(config, progress)
        if "perturb" in sections:
            payload["perturbation"], payload["perturbation_detail"] = run_perturb(config, progress)
        if "attack" in sections:
            payload["attack"] = run_attack(config, progress)
        if "certify" in sections:
            payload["certify"] = run_certify(config, progress)
    payload = _finite(payload)
    with atomic_directory(out, overwrite=config.overwrite, inputs=inputs) as tmp:
        atomic_write_text(tmp / "results.json", json.dumps(payload, indent=1) + "\n")
        tables = {"shift.csv": payload.get("shift"), "perturbation.csv": payload.get("perturbation"),
                  "attack_summary.csv": payload.get("attack", {}).get("summary"),
                  "attack_rows.csv": payload.get("attack", {}).get("rows"),
                  "certify_summary.csv": [{k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in s.items()}
                                          for s in payload.get("certify", {}).get("summary", [])] or None,
                  "certify_documents.csv": payload.get("certify", {}).get("documents")}
        for name, rows in tables.items():
            if rows:
                atomic_write_text(tmp / name, to_csv(rows))
        atomic_write_text(tmp / "report.html", render_html(payload))
        write_manifest(tmp, KIND, 1, {"sections": list(sections), "collections": config.collections},
                       libraries=["torch", "matplotlib"])
    return RobustOutcome(payload, out)


def with_overrides(config: RobustConfig, **given: Any) -> RobustConfig:
    return replace(config, **given)


# ----------------------------------------------------------------------------- perturbation-aware training data
@dataclass(frozen=True)
class AugmentConfig:
    """``rankstack robust augment``: a BEIR copy whose training queries gain perturbed twins.

    Train on it with ``rankstack train reranker --collection OUT ...`` (perturbation-aware training).
    """

    collection: str = option(help="source collection (BEIR folder or name under the data root)")
    out: Path = option(help="folder to write (a cache or output folder, never the data root)")
    split: str = option("train", help="split whose queries are augmented")
    perturbations: list[str] = option(["typo_swap", "typo_drop", "typo_insert", "typo_keyboard", "synonym"],
                                      help="one twin per query and perturbation")
    typo_words: int = option(1, help="words edited per twin")
    data_root: Path | None = option(None, help="data root (default: $RANKSTACK_DATA or ../shared/data)")
    seed: int = option(0, help="random seed")
    overwrite: bool = option(False, help="replace an earlier augmented collection at --out")


def run_augment(config: AugmentConfig) -> Path:
    from rankstack.data.beir import Collection, default_data_root
    from rankstack.robust.augment import write_augmented_collection
    from rankstack.robust.perturb import get_perturbation

    syn = _synonyms() if "synonym" in config.perturbations else None
    perts = [get_perturbation(p, syn, n=config.typo_words) for p in config.perturbations]
    root = Path(config.data_root) if config.data_root else default_data_root()
    coll = Collection(config.collection, config.data_root)
    return write_augmented_collection(coll, config.out, perts, config.split, config.seed, config.overwrite,
                                      inputs=[root])
