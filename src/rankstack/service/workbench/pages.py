"""The workbench's pages: search, experiment list, one experiment, one query's two runs side by side.

Every name in a URL (experiment, run, measure, query id) is looked up among what the served state
and the experiment folder hold; anything else is a 404 page. No error shows a traceback: bad
parameters are a 400 page naming the parameter, unexpected failures a 500 page (logged).
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from rankstack.errors import InputError, RankstackError
from rankstack.service.errors import FieldError, Overloaded, TimedOut
from rankstack.service.state import MAX_QUERY_CHARS
from rankstack.service.workbench.compare_view import change_label, compare_query
from rankstack.service.workbench.experiments import Experiment, ExperimentStore, experiment_names
from rankstack.service.workbench.render import render

__all__ = ["router", "SORTS", "MAX_K"]

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

MAX_K = 100
SORTS = ("delta", "-delta", "qid", "-qid", "value", "-value", "base", "-base")


class PageError(Exception):
    """An error page: HTTP status and one line for the reader."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _guarded(fn):
    """Render PageError (and anything unexpected) as an error page, never a traceback."""

    def error_page(request: Request, exc: Exception):
        if isinstance(exc, PageError):
            return render(request, "error.html", status=exc.status, status_code=exc.status, message=exc.message)
        log.exception("workbench page %s failed", request.url.path)
        return render(request, "error.html", status=500, status_code=500,
                      message="internal error while building this page (details are in the server log)")

    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def run_async(request: Request, *args, **kwargs):
            try:
                return await fn(request, *args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the page boundary
                return error_page(request, exc)
        return run_async

    @functools.wraps(fn)
    def run(request: Request, *args, **kwargs):
        try:
            return fn(request, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the page boundary
            return error_page(request, exc)
    return run


def _service(request: Request) -> Any:
    return getattr(request.app.state, "service", None)


def _store(request: Request) -> ExperimentStore:
    store = getattr(request.app.state, "workbench_store", None)
    if store is None:
        store = request.app.state.workbench_store = ExperimentStore()
    return store


def _int_param(request: Request, key: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise PageError(400, f"{key} must be an integer from {low} to {high}, got {raw[:40]!r}") from None
    if not low <= value <= high:
        raise PageError(400, f"{key} must be from {low} to {high}, got {value}")
    return value


def _choice(request: Request, key: str, choices: list[str], default: str, what: str) -> str:
    value = request.query_params.get(key) or default
    if value not in choices:
        raise PageError(404, f"{what} {value[:80]!r} is not one of {', '.join(choices)}")
    return value


def _experiment(request: Request, name: str) -> Experiment:
    service = _service(request)
    folders = experiment_names(getattr(service, "experiments", None) or [])
    if name not in folders:
        raise PageError(404, f"no experiment named {name[:80]!r} is served")
    try:
        return _store(request).get(name, folders[name])
    except RankstackError as exc:
        raise PageError(500, f"experiment {name!r} cannot be read: {getattr(exc, 'problem', exc)}") from None


def _collection(request: Request, exp: Experiment, required: bool):
    try:
        return _store(request).collection(exp, getattr(_service(request), "collection", None))
    except RankstackError as exc:
        if required:
            raise PageError(500, f"collection of experiment {exp.name!r}: {getattr(exc, 'problem', exc)}") from None
        return None


def _qid_key(qid: str) -> tuple:
    return (0, int(qid), "") if qid.isdigit() else (1, 0, qid)


# search -------------------------------------------------------------------------------------
def _search_context(request: Request) -> dict[str, Any]:
    service = _service(request)
    coll = getattr(service, "collection", None)
    return {"pipeline": getattr(service, "pipeline_spec", None), "collection": getattr(coll, "name", coll),
            "has_experiments": bool(getattr(service, "experiments", None)), "max_k": MAX_K,
            "max_chars": MAX_QUERY_CHARS}


@router.get("/", name="wb_home")
@_guarded
def home(request: Request):
    return render(request, "search.html", q="", k=10, hits=None, message=None, **_search_context(request))


@router.get("/search", name="wb_search")
@_guarded
async def search(request: Request):
    ctx = _search_context(request)
    q = request.query_params.get("q", "")
    k = _int_param(request, "k", 10, 1, MAX_K)
    service = _service(request)
    if service is None or not callable(getattr(service, "search", None)) or ctx["pipeline"] is None:
        raise PageError(404, "this server has no pipeline to search (serve one: rankstack serve PIPELINE)")
    if not q.strip():
        return render(request, "search.html", status=400, q=q, k=k, hits=None, message="q: type a query", **ctx)
    pool = getattr(request.app.state, "pool", None)   # the JSON API's bounded pool: pages shed load alike
    try:
        if pool is not None:
            hits = await pool.run(service.search, q, k)
        else:
            hits = await run_in_threadpool(service.search, q, k)
    except FieldError as exc:
        return render(request, "search.html", status=exc.status if 400 <= exc.status < 500 else 400, q=q, k=k,
                      hits=None, message=f"{exc.field} {exc.problem}", **ctx)
    except InputError as exc:
        return render(request, "search.html", status=400, q=q, k=k, hits=None, message=exc.problem, **ctx)
    except Overloaded as exc:
        return render(request, "search.html", status=503, headers={"Retry-After": str(exc.retry_after)}, q=q, k=k,
                      hits=None, message=f"the service is busy: try again in {exc.retry_after} s", **ctx)
    except TimedOut as exc:
        return render(request, "search.html", status=504, q=q, k=k, hits=None, message=f"search timed out: {exc}",
                      **ctx)
    return render(request, "search.html", q=q, k=k, hits=list(hits), message=None, **ctx)


# experiments --------------------------------------------------------------------------------
@router.get("/experiments", name="wb_experiments")
@_guarded
def experiments(request: Request):
    folders = experiment_names(getattr(_service(request), "experiments", None) or [])
    items = []
    for name, folder in folders.items():
        try:
            items.append({"name": name, "exp": _store(request).get(name, folder), "error": None})
        except RankstackError as exc:
            items.append({"name": name, "exp": None, "error": getattr(exc, "problem", str(exc))})
    return render(request, "experiments.html", items=items)


def _sorted_rows(rows: list[dict], sort: str) -> list[dict]:
    key = sort.lstrip("-")
    reverse = sort.startswith("-")
    by_qid = sorted(rows, key=lambda r: _qid_key(r["qid"]))
    if key == "qid":
        return by_qid[::-1] if reverse else by_qid
    return sorted(by_qid, key=lambda r: r[key], reverse=reverse)   # stable: ties stay in qid order


@router.get("/experiments/{name}", name="wb_experiment")
@_guarded
def experiment(request: Request, name: str):
    exp = _experiment(request, name)
    runs = list(exp.pipelines)
    run = _choice(request, "run", runs, exp.others[0] if exp.others else exp.baseline, "run")
    measure = _choice(request, "measure", exp.measures, exp.measures[0], "measure")
    sort = request.query_params.get("sort") or "delta"
    if sort not in SORTS:
        raise PageError(400, f"sort must be one of {', '.join(SORTS)}, got {sort[:40]!r}")
    exp.prefetch([exp.baseline, run])
    coll = _collection(request, exp, required=False)
    texts = coll.queries if coll is not None else {}
    values, base = exp.values[run][measure], exp.values[exp.baseline][measure]
    rows = [{"qid": q, "text": texts.get(q, ""), "value": values[q], "base": base[q], "delta": values[q] - base[q]}
            for q in exp.queries if q in values and q in base]
    rows = _sorted_rows(rows, sort)
    for i, row in enumerate(sorted(rows, key=lambda r: _qid_key(r["qid"]))):
        row["order"] = i
    return render(request, "experiment.html", exp=exp, run=run, measure=measure, sort=sort, rows=rows,
                  have_texts=coll is not None)


@router.get("/experiments/{name}/query/{qid:path}", name="wb_query")
@_guarded
def query(request: Request, name: str, qid: str):
    exp = _experiment(request, name)
    if qid not in set(exp.queries):
        raise PageError(404, f"query {qid[:80]!r} is not among the {len(exp.queries)} evaluated queries of {name!r}")
    runs = list(exp.pipelines)
    a = _choice(request, "a", runs, exp.baseline, "run a")
    b = _choice(request, "b", runs, exp.others[0] if exp.others else exp.baseline, "run b")
    k = _int_param(request, "k", 10, 1, MAX_K)
    coll = _collection(request, exp, required=True)
    try:
        left, right = compare_query(exp, coll, qid, a, b, k)
    except RankstackError as exc:
        raise PageError(500, f"runs of {name!r}: {getattr(exc, 'problem', exc)}") from None
    judged = coll.qrels.get(qid, {})
    return render(request, "query.html", exp=exp, qid=qid, text=coll.queries.get(qid, ""), a=a, b=b, k=k,
                  left=left, right=right, label=change_label, runs=runs, max_k=MAX_K,
                  n_relevant=sum(1 for g in judged.values() if g > 0), n_judged=len(judged))


@router.get("/experiments/{rest:path}", name="wb_unknown")
@_guarded
def unknown(request: Request, rest: str):
    """Anything else under /experiments (e.g. a name holding '/'): the workbench's 404 page, not JSON."""
    raise PageError(404, f"no page at /experiments/{rest[:80]}")
