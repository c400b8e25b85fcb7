"""Experiment output folders as the workbench reads them: measures, per-query values, runs, judgements.

Why read the written folder (not re-run the experiment): the workbench inspects exactly what
``rankstack experiment FILE --out DIR`` produced (``results.json``, ``per_query.csv``,
``runs/<name>.trec``), verified against its manifest, so what a browser shows is what the report and
the paper table say. Folders are loaded lazily and cached; a folder rewritten by a later experiment
(new manifest id) is re-read. Runs are read only when a query page asks for them.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rankstack.errors import InputError

__all__ = ["Experiment", "ExperimentStore", "Measure", "experiment_names"]

EXPERIMENT_KIND = "experiment"
FORMATS = (1,)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Measure:
    """One cell of the measures table: a run's mean on a measure and its tests against the baseline."""

    mean: float
    delta: float = 0.0
    t_p: float | None = None
    perm_p: float | None = None
    wins: int | None = None
    ties: int | None = None
    losses: int | None = None


def experiment_names(folders: Iterable[Path]) -> dict[str, Path]:
    """Name -> folder for the served experiments: the folder name, ``-2``, ``-3``... when names repeat.

    URLs carry only these names; a request naming anything else is refused (no path in a URL ever
    reaches the file system)."""
    names: dict[str, Path] = {}
    for folder in folders:
        folder = Path(folder)
        base = folder.name or "experiment"
        name, i = base, 1
        while name in names:
            i += 1
            name = f"{base}-{i}"
        names[name] = folder
    return names


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dataclass
class Experiment:
    """One experiment folder, parsed. ``values[run][measure][qid]`` are the per-query values."""

    name: str
    folder: Path
    manifest_id: str
    title: str
    collection_name: str
    collection_path: str
    split: str
    measures: list[str]
    baseline: str
    pipelines: dict[str, str]
    alpha: float | None
    permutations: int | None
    table: dict[str, dict[str, Measure]]
    values: dict[str, dict[str, dict[str, float]]]
    queries: list[str]
    _runs: dict[str, Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def others(self) -> list[str]:
        return [r for r in self.pipelines if r != self.baseline]

    def delta(self, run: str, measure: str, qid: str) -> float:
        return self.values[run][measure][qid] - self.values[self.baseline][measure][qid]

    def significant(self, run: str, measure: str) -> tuple[bool, bool]:
        """(paired t-test, randomization test) significant after Holm correction, as in the report."""
        cell = self.table[run][measure]
        if run == self.baseline or self.alpha is None:
            return False, False
        return (cell.t_p is not None and cell.t_p < self.alpha,
                cell.perm_p is not None and cell.perm_p < self.alpha)

    def prefetch(self, names: Iterable[str]) -> None:
        """Read runs in a background thread (a query page opened next then shows at once)."""
        todo = [n for n in dict.fromkeys(names) if n in self.pipelines and n not in self._runs]
        if todo:
            threading.Thread(target=self._prefetch, args=(todo,), daemon=True, name="workbench-prefetch").start()

    def _prefetch(self, names: list[str]) -> None:
        for n in names:
            try:
                self.run(n)
            except InputError as exc:  # shown on the query page when asked for
                log.warning("workbench: cannot read run %s of %s: %s", n, self.name, exc)
                return

    def run(self, name: str):
        """The TREC run of pipeline ``name`` (read once, then cached)."""
        from rankstack.data.trec import read_run

        if name not in self.pipelines:
            raise InputError(f"experiment {self.name!r} has no run {name!r}",
                             fix=f"choose one of {list(self.pipelines)}")
        with self._lock:
            if name not in self._runs:
                runs_dir = (self.folder / "runs").resolve()
                path = (runs_dir / f"{name}.trec").resolve()
                if path.parent != runs_dir or not path.is_file():
                    raise InputError(f"run file of {name!r} is missing", path=path, fix="re-run the experiment")
                self._runs[name] = read_run(path, name=name)
            return self._runs[name]


def _read_results(folder: Path) -> dict[str, Any]:
    path = folder / "results.json"
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read results.json ({exc})", path=path, fix="re-run the experiment") from None
    need = ("title", "collection", "collection_path", "split", "measures", "baseline", "pipelines")
    missing = [k for k in need if k not in data] if isinstance(data, dict) else list(need)
    if missing:
        raise InputError(f"results.json lacks {missing}", path=path, fix="re-run the experiment with this rankstack")
    return data


def _read_per_query(folder: Path, runs: list[str], measures: list[str]) -> tuple[dict, list[str]]:
    """``per_query.csv`` (either layout: with baseline/delta columns or plain run,qid,measure,value)."""
    path = folder / "per_query.csv"
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read per_query.csv ({exc})", path=path, fix="re-run the experiment") from None
    values: dict[str, dict[str, dict[str, float]]] = {r: {m: {} for m in measures} for r in runs}
    order: dict[str, None] = {}
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header or header[:4] != ["run", "qid", "measure", "value"]:
        raise InputError(f"per_query.csv has header {header!r}, expected run,qid,measure,value,...", path=path, line=1)
    for number, row in enumerate(reader, start=2):
        if len(row) < 4:
            raise InputError(f"per_query.csv row has {len(row)} columns", path=path, line=number)
        run, qid, measure, value = row[:4]
        try:
            v = float(value)
        except ValueError:
            raise InputError(f"value {value!r} is not a number", path=path, line=number) from None
        if not math.isfinite(v):
            raise InputError(f"value {value!r} is not finite", path=path, line=number)
        if run in values and measure in values[run]:
            values[run][measure][qid] = v
            order.setdefault(qid, None)
    return values, list(order)


def load_experiment(name: str, folder: Path) -> Experiment:
    """Verify the folder's manifest (every file's checksum) and parse its results and per-query values."""
    from rankstack.storage import read_manifest

    manifest = read_manifest(folder, EXPERIMENT_KIND, FORMATS)
    data = _read_results(folder)
    pipelines = {str(k): str(v.get("expression", "")) if isinstance(v, dict) else str(v)
                 for k, v in dict(data["pipelines"]).items()}
    measures = [str(m) for m in data["measures"]]
    baseline = str(data["baseline"] or next(iter(pipelines)))
    comp = data.get("comparison") or None
    table: dict[str, dict[str, Measure]] = {r: {} for r in pipelines}
    for r in pipelines:
        for m in measures:
            s = ((comp or {}).get("stats") or {}).get(m, {}).get(r)
            if s:
                table[r][m] = Measure(mean=float(s["mean"]), delta=float(s.get("delta") or 0.0),
                                      t_p=_num(s.get("t_p_holm")), perm_p=_num(s.get("perm_p_holm")),
                                      wins=s.get("wins"), ties=s.get("ties"), losses=s.get("losses"))
            else:
                mean = (data.get("mean") or {}).get(r, {}).get(m)
                table[r][m] = Measure(mean=float(mean) if mean is not None else float("nan"))
    values, queries = _read_per_query(folder, list(pipelines), measures)
    if comp and comp.get("queries"):
        queries = [str(q) for q in comp["queries"]]
    return Experiment(name=name, folder=folder, manifest_id=str(manifest.get("id")), title=str(data["title"]),
                      collection_name=str(data["collection"]), collection_path=str(data["collection_path"]),
                      split=str(data["split"]), measures=measures, baseline=baseline, pipelines=pipelines,
                      alpha=_num((comp or {}).get("alpha")), permutations=(comp or {}).get("permutations"),
                      table=table, values=values, queries=queries)


class ExperimentStore:
    """Loaded experiments and their collections, shared by the request threads (one lock each)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._experiments: dict[Path, Experiment] = {}
        self._collections: dict[tuple[str, str], Any] = {}

    def get(self, name: str, folder: Path) -> Experiment:
        folder = Path(folder)
        current = _manifest_id(folder)
        with self._lock:
            cached = self._experiments.get(folder)
            if cached is not None and cached.manifest_id == current:
                return cached
        exp = load_experiment(name, folder)
        with self._lock:
            self._experiments[folder] = exp
        return exp

    def collection(self, exp: Experiment, served: Any = None) -> Any:
        """The experiment's collection (qrels, query and document texts): the folder recorded in
        results.json, or the served collection when that folder is gone and the names agree."""
        from rankstack.data.beir import Collection

        key = (exp.collection_path, exp.split)
        with self._lock:
            if key in self._collections:
                return self._collections[key]
        if Path(exp.collection_path).is_dir():
            coll = Collection(exp.collection_path)
        elif served is not None and getattr(served, "name", None) == exp.collection_name:
            coll = served
        else:
            raise InputError(f"collection {exp.collection_name!r} of experiment {exp.name!r} is not at "
                             f"{exp.collection_path}",
                             fix="serve the experiment on the machine that ran it, or pass --collection")
        bundle = _CollectionView(coll, exp.split)
        with self._lock:
            self._collections[key] = bundle
        return bundle


def _manifest_id(folder: Path) -> str | None:
    try:
        return str(json.loads((folder / "manifest.json").read_text("utf-8")).get("id"))
    except (OSError, ValueError, AttributeError):
        return None


class _CollectionView:
    """Query texts, judgements and documents of one collection, read once."""

    def __init__(self, collection: Any, split: str) -> None:
        self.collection = collection
        self.name = getattr(collection, "name", "")
        self.queries = collection.queries(None).to_dict()
        self.qrels = collection.qrels(split).to_dict()
        self._docs = None
        self._lock = threading.Lock()

    def document(self, docid: str) -> tuple[str, str] | None:
        with self._lock:
            if self._docs is None:
                self._docs = self.collection.documents()
        doc = self._docs.get(docid)
        return None if doc is None else (doc.title, doc.text)
