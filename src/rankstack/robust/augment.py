"""Perturbation-aware training data: a BEIR copy of a collection whose training queries gain perturbed twins.

Why a derived collection: the reranker recipe (:mod:`rankstack.recipes.reranker`) trains from a BEIR
folder; giving it one whose training split also holds typo/neighbour-substituted copies of each query
(same judgements) is perturbation-aware training through the existing Trainer with no change to the
recipe -- the data augmentation of Zhuang & Zuccon, "Dealing with Typos for BERT-based Passage
Retrieval and Ranking" (EMNLP 2021) and of Wu et al.'s robustness study. The copy lives in a cache or
output folder (never the data root), written as a ``robust-augmented-collection`` artefact.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["write_augmented_collection", "KIND"]

KIND = "robust-augmented-collection"


def write_augmented_collection(collection: Any, out: str | Path, perturbations: Sequence[Any], split: str = "train",
                               seed: int = 0, overwrite: bool = False, inputs: Sequence[Path] = ()) -> Path:
    """Copy ``collection`` to ``out`` and add one perturbed twin per query of ``split`` and perturbation.

    Twins are named ``<qid>~<perturbation>``; a twin identical to its query is left out. Other splits'
    qrels are copied unchanged, so the test split stays clean.
    """
    from rankstack.robust.perturb import perturb_queries
    from rankstack.storage import atomic_directory, write_manifest

    src = Path(collection.path)
    queries = collection.queries(None)
    train_q = collection.queries(split)
    qrels = collection.qrels(split)
    rows = list(zip(qrels.qids.tolist(), qrels.docids.tolist(), qrels.relevance.tolist()))
    added = {}
    for p in perturbations:
        for qid, text in perturb_queries(train_q, p, seed):
            if text != train_q[qid]:
                added[f"{qid}~{p.name}"] = (qid, text)
    with atomic_directory(out, overwrite=overwrite, inputs=[src, *inputs]) as tmp:
        shutil.copyfile(collection.corpus_path, tmp / "corpus.jsonl")
        with open(tmp / "queries.jsonl", "w", encoding="utf-8") as fh:
            for qid, text in queries:
                fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
            for new, (_, text) in added.items():
                fh.write(json.dumps({"_id": new, "text": text}) + "\n")
        (tmp / "qrels").mkdir()
        for other in collection.splits():
            if other != split:
                shutil.copyfile(src / "qrels" / f"{other}.tsv", tmp / "qrels" / f"{other}.tsv")
        by_q: dict[str, list[tuple[str, int]]] = {}
        for q, d, r in rows:
            by_q.setdefault(q, []).append((d, r))
        with open(tmp / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as fh:
            fh.write("query-id\tcorpus-id\tscore\n")
            for q, d, r in rows:
                fh.write(f"{q}\t{d}\t{r}\n")
            for new, (q, _) in added.items():
                for d, r in by_q.get(q, []):
                    fh.write(f"{new}\t{d}\t{r}\n")
        write_manifest(tmp, KIND, 1, {"source": str(src), "split": split, "seed": seed,
                                      "perturbations": [p.name for p in perturbations], "added_queries": len(added)})
    return Path(out)
