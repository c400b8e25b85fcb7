"""The teacher's scores of every training pair, computed once and cached on disk.

Why cached: distillation needs the 6-layer teacher's score of each (query, document) pair the
student trains on, and scoring ~25,000 pairs with the teacher costs minutes of CPU; a second run
(another student size, another loss, another seed over the same pairs) should not pay them again.
The cache is keyed by content, never by path or time: the teacher's folder fingerprint (every
file's SHA-256), the precision and max length it scored with, and a SHA-256 over the pairs' texts.
Each entry is an atomic folder (``scores.npy`` + a checksummed manifest, no pickle); an entry that
fails verification is logged and rebuilt, never trusted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.errors import InputError

__all__ = ["TEACHER_SCORES_KIND", "pairs_checksum", "cached_teacher_scores", "attach_pair_scores"]

log = logging.getLogger(__name__)

TEACHER_SCORES_KIND = "teacher-scores"
FORMAT_VERSION = 1


def pairs_checksum(query_texts: Sequence[str], doc_texts: Sequence[str]) -> str:
    """SHA-256 over the ordered (query, document) texts."""
    h = hashlib.sha256()
    for q, d in zip(query_texts, doc_texts):
        h.update(q.encode("utf-8", "surrogatepass") + b"\x00" + d.encode("utf-8", "surrogatepass") + b"\x01")
    return h.hexdigest()


def cached_teacher_scores(teacher: Any, teacher_fingerprint: str, query_texts: Sequence[str],
                          doc_texts: Sequence[str], cache_dir: str | Path | None) -> tuple[np.ndarray, bool]:
    """``(teacher.score(query_texts, doc_texts), loaded_from_cache)``, cached under
    ``cache_dir/teacher_scores/``. ``teacher`` is a PairScorer (e.g. a CrossEncoderReranker) with
    ``precision_used`` and ``max_length``; ``teacher_fingerprint`` identifies its weights."""
    from rankstack.rerank.base import require_bare_pairs

    require_bare_pairs(teacher, "a distillation teacher")
    if len(query_texts) != len(doc_texts):
        raise InputError(f"{len(query_texts)} queries for {len(doc_texts)} documents")
    if cache_dir is None:
        return np.asarray(teacher.score(list(query_texts), list(doc_texts)), dtype=np.float64), False
    from rankstack.storage import atomic_directory, read_manifest, write_manifest

    params = {"teacher_fingerprint": teacher_fingerprint, "precision": getattr(teacher, "precision_used", None),
              "max_length": getattr(teacher, "max_length", None), "num_pairs": len(query_texts),
              "pairs_sha256": pairs_checksum(query_texts, doc_texts)}
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    folder = Path(cache_dir) / "teacher_scores" / f"{teacher_fingerprint[:12]}-{key}"
    if folder.is_dir():
        try:
            manifest = read_manifest(folder, TEACHER_SCORES_KIND, (FORMAT_VERSION,))
            if {k: manifest["params"].get(k) for k in params} != params:
                raise InputError("cached teacher scores describe another teacher or other pairs", path=folder)
            scores = np.load(folder / "scores.npy", allow_pickle=False)
            if scores.shape != (len(query_texts),) or not np.all(np.isfinite(scores)):
                raise InputError(f"cached teacher scores have shape {scores.shape}", path=folder)
            log.info("loaded %d cached teacher scores from %s", len(scores), folder)
            return scores.astype(np.float64), True
        except InputError as exc:
            log.warning("re-scoring: ignoring unusable teacher-score cache %s (%s)", folder, exc)
    scores = np.asarray(teacher.score(list(query_texts), list(doc_texts)), dtype=np.float64)
    with atomic_directory(folder, overwrite=True) as tmp:  # the cache rewrites only its own entry
        np.save(tmp / "scores.npy", scores, allow_pickle=False)
        write_manifest(tmp, TEACHER_SCORES_KIND, FORMAT_VERSION, params, libraries=["numpy", "torch", "transformers"])
    log.info("cached %d teacher scores in %s", len(scores), folder)
    return scores, False


def attach_pair_scores(groups: list[Any], doc_texts: Callable[[Sequence[str]], list[str]],
                       score: Callable[[list[str], list[str]], np.ndarray]) -> list[Any]:
    """Each group with ``meta["teacher"]`` = ``score`` of its (query, document) pairs.

    Every distinct (query, document) pair is scored once, in a canonical order (sorted), so the same
    set of pairs gives the same cache key however the groups were shuffled or resampled.
    """
    unique = sorted({(g.query, d) for g in groups for d in g.docids})
    if not unique:
        return list(groups)
    texts = dict(zip(sorted({d for _, d in unique}), doc_texts(sorted({d for _, d in unique}))))
    values = np.asarray(score([q for q, _ in unique], [texts[d] for _, d in unique]), dtype=np.float64)
    if values.shape != (len(unique),) or not np.all(np.isfinite(values)):
        raise InputError(f"the teacher returned {values.shape} scores (or non-finite ones) for {len(unique)} pairs",
                         fix="check the teacher model")
    lookup = dict(zip(unique, values.tolist()))
    return [dataclasses.replace(g, meta={**g.meta, "teacher": [lookup[(g.query, d)] for d in g.docids]})
            for g in groups]
