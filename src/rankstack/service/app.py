"""The FastAPI app: JSON API under ``/v1`` and ``/healthz``, the workbench's pages beside it.

Endpoints (OpenAPI at ``/openapi.json``, docs at ``/docs``):

* ``GET /healthz`` — liveness and load (answered outside the worker pool, so it works under load).
* ``POST /v1/search`` ``{query, k}`` — ranked documents with scores and highlighted snippets.
* ``POST /v1/rerank`` ``{query, candidates: [{id} | {text}], k?}`` — the pipeline's last stage, if it
  is a reranker, applied to the candidates.
* ``POST /v1/evaluate`` ``{run, measures?, split?}`` — measures of a TREC run against the qrels.
* ``GET /v1/documents/{docid}`` — a document's title and text.

Every error has one shape, ``{"error": {"field", "message", "fix", "request_id"}}``: 422 for a
missing, mistyped or out-of-bounds field (``field`` names it, e.g. ``k`` or ``candidates[2].id``),
404 for an unknown id, collection or split, 413 for a body over the limit, 503 + ``Retry-After`` when
the worker pool and its queue are full, 504 on timeout, and 500 with only a request id for anything
unexpected (the traceback goes to the server's log, never to the client).
"""

from __future__ import annotations

import importlib.util
import logging
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rankstack.errors import InputError
from rankstack.service.errors import ClientGone, FieldError, Overloaded, TimedOut
from rankstack.service.middleware import RequestContext, error_body
from rankstack.service.pool import BoundedPool
from rankstack.service.schemas import (ERROR_RESPONSES, EvaluateRequest, EvaluateResponse, Health, RerankRequest,
                                       RerankResponse, SearchRequest, SearchResponse)
from rankstack.service.state import Candidate, ServiceState

__all__ = ["create_app", "DEFAULT_LIMITS"]

log = logging.getLogger(__name__)

DEFAULT_LIMITS = {"workers": 1, "queue": 16, "timeout": 30.0, "max_body_bytes": 16 << 20, "retry_after": 1}


def create_app(config_or_state: Any, **limits: Any) -> FastAPI:
    """The app serving a :class:`ServiceState` (or one built from a ``ServeConfig``).

    ``limits`` override the config's ``workers``, ``queue``, ``timeout``, ``max_body_bytes`` and
    ``retry_after`` (seconds the 503 asks clients to wait).
    """
    from rankstack.recipes.serve import ServeConfig

    if isinstance(config_or_state, ServiceState):
        state = config_or_state
    elif isinstance(config_or_state, ServeConfig):
        state = ServiceState.from_config(config_or_state)
    else:
        raise TypeError(f"create_app takes a ServeConfig or a ServiceState, got {type(config_or_state).__name__}")
    settings = dict(DEFAULT_LIMITS)
    if state.config is not None:
        settings.update({k: getattr(state.config, k) for k in ("workers", "queue", "timeout", "max_body_bytes")})
    unknown = set(limits) - set(DEFAULT_LIMITS)
    if unknown:
        raise TypeError(f"unknown limits {sorted(unknown)}; accepted: {sorted(DEFAULT_LIMITS)}")
    settings.update(limits)
    pool = BoundedPool(settings["workers"], settings["queue"], settings["timeout"], settings["retry_after"])

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        pool.shutdown()

    import rankstack

    app = FastAPI(title="rankstack search service", version=rankstack.__version__, lifespan=lifespan,
                  description=f"Serves `{state.pipeline_spec}`" + (
                      f" over collection `{state.collection.name}`" if state.collection is not None else ""))
    app.state.service = state
    app.state.pool = pool
    app.state.limits = settings
    _add_error_handlers(app)
    _add_routes(app, state, pool)
    _add_examples(app, state)
    app.add_middleware(RequestContext, max_body_bytes=settings["max_body_bytes"])
    if importlib.util.find_spec("rankstack.service.workbench") is not None:
        from rankstack.service.workbench import mount_workbench

        mount_workbench(app)
    return app


def _add_examples(app: FastAPI, state: ServiceState) -> None:
    """Request examples from the served collection (a real query, real ids, a run that evaluates), so
    /docs and schemathesis' example phase reach the real work instead of 'unknown id' errors."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = plain()
        examples = _examples(state)
        for path, example in examples.items():
            body = schema.get("paths", {}).get(path, {}).get("post", {}).get("requestBody", {})
            media = body.get("content", {}).get("application/json")
            if media is not None:
                media["example"] = example
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _examples(state: ServiceState) -> dict[str, dict[str, Any]]:
    if state.collection is None:
        return {"/v1/search": {"query": "example query", "k": 10}}
    try:
        split = "test" if "test" in state.collection.splits() else state.collection.splits()[0]
        qrels = state.qrels(split)
        qid, docid = str(qrels.qids[0]), str(qrels.docids[0])
        query = state.collection.queries(None)[qid]
    except (InputError, IndexError):
        split, qid, docid, query = "test", "1", next(iter(state.collection.documents()), "1"), "example query"
    docids = [docid] + [d for d in list(state.collection.documents())[:3] if d != docid][:2]
    return {"/v1/search": {"query": query, "k": 10},
            "/v1/rerank": {"query": query, "candidates": [{"id": d} for d in docids], "k": 3},
            "/v1/evaluate": {"run": "".join(f"{qid} Q0 {d} {i} {3 - i}.0 example\n" for i, d in enumerate(docids, 1)),
                             "measures": ["nDCG@10", "AP"], "split": split}}


# -- errors -----------------------------------------------------------------------------------------
def _request_id(request: Request) -> str | None:
    return (request.scope.get("state") or {}).get("request_id")


def _error(request: Request, status: int, field: str | None, message: str, fix: str | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    """The uniform error response (RequestContext adds X-Request-ID, except to a 500 sent outside it)."""
    rid = _request_id(request)
    return JSONResponse(error_body(field, message, fix, rid), status_code=status,
                        headers={**(headers or {}), **({"X-Request-ID": rid} if rid and status == 500 else {})})


def _field_of(loc: tuple) -> str:
    """``("body", "candidates", 2, "id")`` -> ``candidates[2].id``; the bare body -> ``body``."""
    parts = list(loc[1:] if loc and loc[0] == "body" else loc)
    text = ""
    for p in parts:
        text += f"[{p}]" if isinstance(p, int) else (f".{p}" if text else str(p))
    return text or "body"


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request", "type": ""}
        field = _field_of(tuple(first.get("loc") or ("body",)))
        message = str(first.get("msg", "invalid value"))
        if first.get("type") == "json_invalid":
            field, message = "body", f"is not valid JSON ({first.get('ctx', {}).get('error', 'parse error')})"
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        return _error(request, 422, field, message + more, "see the request schema at /openapi.json")

    @app.exception_handler(FieldError)
    async def bad_field(request: Request, exc: FieldError) -> JSONResponse:
        return _error(request, exc.status, exc.field, exc.problem, exc.fix)

    @app.exception_handler(InputError)
    async def bad_input(request: Request, exc: InputError) -> JSONResponse:
        return _error(request, 400, None, exc.problem, exc.fix)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        field = "path" if exc.status_code == 404 else "method" if exc.status_code == 405 else None
        return _error(request, exc.status_code, field, str(exc.detail), headers=dict(exc.headers or {}))

    @app.exception_handler(Overloaded)
    async def overloaded(request: Request, exc: Overloaded) -> JSONResponse:
        return _error(request, 503, None, "the service is at capacity; the request was not queued",
                      f"retry after {exc.retry_after} s", headers={"Retry-After": str(exc.retry_after)})

    @app.exception_handler(TimedOut)
    async def timed_out(request: Request, exc: TimedOut) -> JSONResponse:
        return _error(request, 504, None, str(exc), "retry later, or ask for fewer documents or candidates")

    @app.exception_handler(ClientGone)
    async def client_gone(request: Request, exc: ClientGone) -> JSONResponse:
        # nobody reads this answer; 499 (nginx's "client closed request") marks it in the access log
        return _error(request, 499, None, "the client closed the request before it was computed")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        rid = _request_id(request)
        log.error("request %s %s failed (request id %s)", request.method, request.url.path, rid, exc_info=exc)
        return _error(request, 500, None, "internal error", f"report request id {rid} to the operator")


# -- routes -----------------------------------------------------------------------------------------
def _check_collection(state: ServiceState, name: str | None) -> None:
    if name is None:
        return
    served = state.collection
    if served is None or name not in (served.name, str(served.path)):
        raise FieldError("collection", f"unknown collection {name[:200]!r}; this service serves "
                                       f"{served.name if served is not None else 'no collection'!r}",
                         fix="omit 'collection' or name the served one (see /healthz)", status=404)


def _add_routes(app: FastAPI, state: ServiceState, pool: BoundedPool) -> None:
    collection_name = state.collection.name if state.collection is not None else None

    @app.get("/healthz", response_model=Health, tags=["service"])
    async def healthz() -> Health:
        s = pool.stats()
        return Health(status="ok", pipeline=state.pipeline_spec, collection=collection_name, workers=s["workers"],
                      queue=s["queue"], in_flight=s["in_flight"], shed=s["shed"])

    @app.post("/v1/search", response_model=SearchResponse, responses=ERROR_RESPONSES, tags=["search"])
    async def search(body: SearchRequest, request: Request) -> SearchResponse:
        """The served pipeline's top ``k`` documents for ``query``."""
        _check_collection(state, body.collection)
        hits = await pool.run(state.search, body.query, body.k, disconnected=request.is_disconnected)
        return SearchResponse(pipeline=state.pipeline_spec, collection=collection_name, k=body.k,
                              hits=[h.__dict__ for h in hits])

    @app.post("/v1/rerank", response_model=RerankResponse, responses=ERROR_RESPONSES, tags=["search"])
    async def rerank(body: RerankRequest, request: Request) -> RerankResponse:
        """Rerank candidate documents (ids of the collection or texts) with the pipeline's reranker."""
        _check_collection(state, body.collection)
        candidates = [Candidate(c.id, c.text, c.score) for c in body.candidates]
        hits, combined = await pool.run(state.rerank, body.query, candidates, body.k,
                                        disconnected=request.is_disconnected)
        return RerankResponse(pipeline=state.pipeline_spec, reranker=repr(state.reranker), combined=combined,
                              hits=[h.__dict__ for h in hits])

    @app.post("/v1/evaluate", response_model=EvaluateResponse, responses=ERROR_RESPONSES, tags=["evaluate"])
    async def evaluate(body: EvaluateRequest, request: Request) -> EvaluateResponse:
        """Evaluate a TREC run against the served collection's qrels (trec_eval semantics)."""
        _check_collection(state, body.collection)
        result = await pool.run(state.evaluate, body.run, body.measures, body.split,
                                disconnected=request.is_disconnected)
        return EvaluateResponse(collection=collection_name, **result)

    @app.get("/v1/documents/{docid}", responses=ERROR_RESPONSES, tags=["search"])
    async def document(docid: str) -> dict[str, str]:
        """A document's title and text."""
        title, text = state.document(docid)
        return {"docid": docid, "title": title, "text": text}
