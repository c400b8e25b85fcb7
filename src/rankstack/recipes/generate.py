"""Generate synthetic queries for a collection (``rankstack generate-queries``): select, generate, append.

The workflow: read the corpus (documents with empty text are skipped and counted), select documents
(``uniform`` or DUQGen's cluster sampling, :mod:`rankstack.synth.selection`), generate one query per
(document, seed) with a generator of :mod:`rankstack.synth.generators`, drop and count rejected
outputs, and append the records to a JSONL file (:mod:`rankstack.synth.records`) batch by batch.

Resumable: ``--resume`` re-reads the file (a torn last line left by a kill is dropped with a warning),
refuses it if it was written with other settings (generator, prompt, model, selection, seed), and
generates only the (document, generator, prompt, seed) items not yet in it, so an interrupted run
ends with exactly the union and no duplicates. ``--time-budget`` stops between batches (at least one
batch runs); run again with ``--resume`` to continue. Rejected items are not recorded and are
retried on resume (greedy decoding rejects them again, cheaply: they are few).
Papers: InPars (Bonifacio et al. 2022), DUQGen (Chandradevan et al. 2024).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rankstack.errors import InputError
from rankstack.recipes.config import option, to_dict

__all__ = ["GenerateConfig", "GenerateOutcome", "run", "DEFAULT_MODELS", "select_documents", "make_generator"]

log = logging.getLogger(__name__)

DEFAULT_MODELS = {"llm-instruct": "smollm2", "inpars": "gemma3-270m"}
# settings a resumed file must share with the run that started it (anything else may change)
_IDENTITY = ("collection_name", "generator", "prompt_id", "model", "selection", "seed", "queries_per_doc",
             "clusters", "min_chars", "duqgen_temperature", "encoder", "temperature", "max_doc_tokens")


@dataclass(frozen=True)
class GenerateConfig:
    """Generate synthetic queries for a collection's documents into a resumable JSONL file."""

    collection: str = option(help="a BEIR folder, or a collection name under the data root")
    out: Path = option(help="JSONL file to write (an existing one needs --resume)")
    generator: Literal["title", "ict", "salient", "llm-instruct", "inpars"] = option(
        "llm-instruct", help="query generator: no-LLM title/ict/salient, or llm-instruct (SmolLM2) / inpars (gemma)")
    selection: Literal["uniform", "duqgen"] = option("uniform", help="which documents get queries")
    max_docs: int = option(500, help="documents to select")
    time_budget: float | None = option(None, metavar="MINUTES", help="stop generating after this many minutes")
    resume: bool = option(False, help="continue an interrupted --out file (same settings)")
    data_root: str | None = option(None, help="folder holding collections by name")
    seed: int = option(0, help="seed of the selection and of sampled generation")
    queries_per_doc: int = option(1, help="queries per document (seeds seed..seed+n-1; needs ict or --temperature > 0)")
    model: str | None = option(None, help="LLM: 'smollm2', 'gemma3-270m', a .gguf file, a folder or an http(s) URL "
                                          "(default: smollm2 for llm-instruct, gemma3-270m for inpars)")
    prompt: str | None = option(None, help="LLM prompt variant (llm-instruct: question-prefilled [default], question, "
                                           "after, query, bare; inpars: inpars-v1) or a template with {doc}")
    batch_size: int = option(8, help="documents per generation batch")
    threads: int | None = option(None, help="torch threads (none: torch's choice)")
    precision: Literal["auto", "bf16", "fp32"] = option("auto", help="LLM: auto = bf16 autocast where the CPU has "
                                                                     "native bf16 (the model name then ends +bf16)")
    max_doc_tokens: int = option(200, help="LLM: passage tokens in the prompt")
    max_new_tokens: int | None = option(None, help="LLM: tokens to generate (default: the generator's)")
    temperature: float = option(0.0, help="LLM sampling temperature (0: greedy)")
    clusters: int | None = option(None, help="DUQGen: k-means clusters (none: the elbow of the error curve)")
    duqgen_temperature: float = option(1.0, help="DUQGen: softmax temperature of within-cluster sampling")
    min_chars: int = option(0, help="skip documents shorter than this (DUQGen's paper used 300)")
    encoder: str = option("minilm", help="DUQGen: document encoder")
    cache_dir: Path = option(Path(".cache/rankstack"), help="cache folder (embeddings, models)")
    llm_cache: bool = option(False, help="also cache LLM answers in cache_dir/llm.sqlite")

    def __post_init__(self) -> None:
        for name in ("max_docs", "queries_per_doc", "batch_size", "max_doc_tokens"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"{name} must be a positive integer, got {v!r}")
        if self.time_budget is not None and self.time_budget <= 0:
            raise InputError(f"time_budget must be positive minutes, got {self.time_budget!r}")
        if self.temperature < 0 or self.duqgen_temperature <= 0 or self.min_chars < 0:
            raise InputError("temperature must be >= 0, duqgen_temperature > 0 and min_chars >= 0")
        if self.clusters is not None and self.clusters < 1:
            raise InputError(f"clusters must be >= 1, got {self.clusters!r}")
        llm = self.generator in DEFAULT_MODELS
        if self.queries_per_doc > 1 and not (self.generator == "ict" or (llm and self.temperature > 0)):
            raise InputError(f"queries_per_doc={self.queries_per_doc} would repeat the same query: generator "
                             f"{self.generator!r} is deterministic", fix="use --generator ict, or an LLM "
                             "generator with --temperature 0.7")
        if not llm and (self.model is not None or self.prompt is not None):
            raise InputError(f"--model/--prompt apply to LLM generators only, not {self.generator!r}")


@dataclass
class GenerateOutcome:
    """What a run did; ``to_dict`` is also written beside the output as ``<out>.report.json``."""

    out: Path
    generator: str
    prompt_id: str
    documents: int
    empty_documents: int
    selected: int
    items: int
    already_done: int
    written: int
    rejected: dict[str, int]
    seconds: float
    generation_seconds: float
    stopped_by_budget: bool
    selection_report: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)
    rejected_examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def queries_per_second(self) -> float:
        return self.written / self.generation_seconds if self.generation_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}
        out["queries_per_second"] = round(self.queries_per_second, 4)
        out["remaining"] = self.items - self.already_done - self.written - sum(self.rejected.values())
        return out

    def to_text(self) -> str:
        rej = ", ".join(f"{k} {v}" for k, v in sorted(self.rejected.items())) or "none"
        cov = self.selection_report
        cov_text = (f"; coverage: {cov['clusters_hit']}/{cov['clusters']} clusters, relative entropy "
                    f"{cov['relative_entropy']:.3f}") if "clusters_hit" in cov else ""
        lines = [f"{self.generator} ({self.prompt_id}): {self.written} queries written to {self.out} "
                 f"({self.already_done} already there) in {self.generation_seconds:.1f} s "
                 f"({self.queries_per_second:.2f} queries/s)",
                 f"documents: {self.documents} ({self.empty_documents} with empty text skipped), "
                 f"{self.selected} selected{cov_text}",
                 f"rejected: {rej}"]
        if self.stopped_by_budget:
            lines.append(f"stopped by the time budget with {self.to_dict()['remaining']} items left: "
                         "run again with --resume to continue")
        return "\n".join(lines)


Embed = Callable[[Sequence[str], Sequence[str]], np.ndarray]


def select_documents(config: GenerateConfig, docs: Sequence[Any], eligible: np.ndarray,
                     embed: Embed | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Positions of the selected documents (see :mod:`rankstack.synth.selection`) and a report."""
    from rankstack.synth.selection import select_duqgen, select_uniform

    pos = np.flatnonzero(eligible)
    if config.selection == "uniform":
        sel = select_uniform(len(pos), config.max_docs, config.seed)
        return pos[sel.indices], sel.report
    if embed is None:
        from rankstack.encode import cached_encode, load_encoder

        encoder = load_encoder(config.encoder, threads=config.threads)
        vectors = cached_encode(encoder, [d.contents for d in docs], [d.docid for d in docs], config.cache_dir)
    else:
        vectors = np.asarray(embed([d.contents for d in docs], [d.docid for d in docs]), dtype=np.float32)
    sel = select_duqgen(vectors, config.max_docs, clusters=config.clusters, seed=config.seed,
                        temperature=config.duqgen_temperature, eligible=eligible)
    return sel.indices, sel.report


def make_generator(config: GenerateConfig, backend: Any = None) -> Any:
    """The configured generator; LLM generators load ``config.model`` unless ``backend`` is given."""
    from rankstack.synth.generators import build_generator

    if config.generator not in DEFAULT_MODELS:
        return build_generator(config.generator)
    if backend is None:
        from rankstack.llm.models import load_backend

        backend = load_backend(config.model or DEFAULT_MODELS[config.generator], cache_dir=config.cache_dir,
                               cache=config.llm_cache, threads=config.threads, batch_size=config.batch_size,
                               precision=config.precision)
    opts: dict[str, Any] = {"max_doc_tokens": config.max_doc_tokens, "temperature": config.temperature}
    if config.max_new_tokens is not None:
        opts["max_new_tokens"] = config.max_new_tokens
    if config.prompt is not None:
        opts["prompt"] = config.prompt
    return build_generator(config.generator, backend=backend, **opts)


def _identity(config: GenerateConfig, collection: Any, gen: Any) -> dict[str, Any]:
    c = to_dict(config)
    model = getattr(getattr(gen, "backend", None), "name", None)
    # the model is the loaded backend's name (weights digest, +bf16), not the --model spelling that chose it
    return {**{k: c[k] for k in _IDENTITY if k in c}, "generator": config.generator,
            "collection_name": collection.name, "prompt_id": gen.prompt_id, "model": model}


def _check_resume(header: dict[str, Any], identity: dict[str, Any], out: Path) -> None:
    config = header.get("config", {})
    old = dict(config.get("identity", {}))
    loaded = config.get("generator", {}).get("model")
    if loaded is not None and old.get("model") == config.get("settings", {}).get("model"):
        old["model"] = loaded  # files written before the fix recorded the --model spelling; provenance has the model
    for key, value in identity.items():
        if key in old and old[key] != value:
            fix = "resume with the same settings, or write to a new --out file"
            if key == "model" and str(old[key]).removesuffix("+bf16") == str(value).removesuffix("+bf16"):
                fix = (f"resume with --precision {'bf16' if str(old[key]).endswith('+bf16') else 'fp32'} (the file "
                       "was generated at that precision; bf16 runs only where the CPU has it), or write a new --out file")
            raise InputError(f"--resume: the file was generated with {key}={old[key]!r}, this run has {value!r}",
                             path=out, fix=fix)


def run(config: GenerateConfig, *, progress: bool | None = True, backend: Any = None,
        embed: Embed | None = None) -> GenerateOutcome:
    """Select, generate and append; see the module docstring. ``backend`` / ``embed`` replace the
    LLM and the document encoder (tests, benchmarks)."""
    from tqdm.auto import tqdm

    from rankstack.data.beir import Collection
    from rankstack.storage import atomic_write_text, check_output_file
    from rankstack.synth.records import (SyntheticQuery, read_synthetic_header, read_synthetic_queries,
                                         repair_torn_tail, write_synthetic_queries)

    t0 = time.perf_counter()
    collection = Collection(config.collection, data_root=config.data_root)
    out = Path(config.out)
    inputs = [collection.path]
    check_output_file(out, inputs)
    exists = out.exists() and out.stat().st_size > 0
    if exists and not config.resume:
        raise InputError("output file already exists", path=out,
                         fix="pass --resume to continue it, or choose a new --out file")
    docs = list(collection.corpus())
    if not docs:
        raise InputError("the collection has no documents", path=collection.corpus_path,
                         fix="give a collection whose corpus.jsonl holds documents")
    eligible = np.array([bool(d.contents.strip()) and len(d.contents) >= config.min_chars for d in docs])
    empty = int(sum(not d.contents.strip() for d in docs))
    if empty:
        log.warning("%d of %d documents have empty text: skipped", empty, len(docs))
    if not eligible.any():
        raise InputError(f"none of the {len(docs)} documents has text" + (
            f" of at least {config.min_chars} characters" if config.min_chars else ""),
            path=collection.corpus_path, fix="check the corpus' title/text fields (or lower --min-chars)")

    gen = make_generator(config, backend)
    identity = _identity(config, collection, gen)
    done: set[tuple[str, str, str, int]] = set()
    if exists:
        _check_resume(read_synthetic_header(out), identity, out)
        repair_torn_tail(out)
        done = {r.key for r in read_synthetic_queries(out)}
    selected, sel_report = select_documents(config, docs, eligible, embed)
    gen.fit(d for d, ok in zip(docs, eligible) if ok)
    items = [(int(i), config.seed + j) for i in selected for j in range(config.queries_per_doc)]
    pending = [(i, s) for i, s in items if (docs[i].docid, gen.name, gen.prompt_id, s) not in done]
    header_config = {"identity": identity, "settings": to_dict(config), "generator": gen.describe(),
                     "selection": sel_report}

    rejected: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    written = 0
    stopped = False
    step = config.batch_size if gen.uses_llm else max(config.batch_size, 256)
    budget = None if config.time_budget is None else config.time_budget * 60.0
    t_gen = time.perf_counter()
    usage0 = gen.backend.usage.copy() if gen.uses_llm else None
    by_seed: dict[int, list[int]] = {}
    for i, s in pending:
        by_seed.setdefault(s, []).append(i)
    with tqdm(total=len(pending), unit="query", desc=f"generate {gen.name}", disable=not progress) as bar:
        for s, positions in by_seed.items():
            for start in range(0, len(positions), step):
                if budget is not None and written + sum(rejected.values()) > 0 \
                        and time.perf_counter() - t_gen >= budget:
                    stopped = True
                    break
                batch = [docs[i] for i in positions[start:start + step]]
                results = gen.generate(batch, seed=s)
                records = []
                for r in results:
                    if r.rejected is not None:
                        rejected[r.rejected] += 1
                        raw = r.extra.get("raw")
                        if raw is not None and len(examples.setdefault(r.rejected, [])) < 5:
                            examples[r.rejected].append(f"{r.doc_id}: {raw[:200]}")
                        log.debug("rejected (%s) for %s: %r", r.rejected, r.doc_id, raw)
                        continue
                    records.append(SyntheticQuery(qid=f"syn-{gen.prompt_id}-s{s}-{r.doc_id}", text=r.text,
                                                  doc_id=r.doc_id, generator=gen.name, prompt_id=gen.prompt_id,
                                                  seed=s, score=r.score, extra=r.extra))
                write_synthetic_queries(out, records, append=True, generator=gen.name, config=header_config,
                                        inputs=inputs)
                written += len(records)
                bar.update(len(batch))
                bar.set_postfix(kept=written, rejected=sum(rejected.values()))
            if stopped:
                break
    gen_seconds = time.perf_counter() - t_gen
    if not out.exists():  # nothing pending and a new file: still leave a valid (empty) file
        write_synthetic_queries(out, [], append=True, generator=gen.name, config=header_config, inputs=inputs)
    usage = gen.backend.usage.minus(usage0).to_dict() if usage0 is not None else {}
    outcome = GenerateOutcome(out=out, generator=gen.name, prompt_id=gen.prompt_id, documents=len(docs),
                              empty_documents=empty, selected=int(len(selected)), items=len(items),
                              already_done=len(items) - len(pending), written=written, rejected=dict(rejected),
                              seconds=time.perf_counter() - t0, generation_seconds=gen_seconds,
                              stopped_by_budget=stopped, selection_report=sel_report, usage=usage,
                              rejected_examples=examples)
    import json

    atomic_write_text(out.with_name(out.name + ".report.json"), json.dumps(outcome.to_dict(), indent=2) + "\n",
                      inputs=inputs, kind="json")
    return outcome
