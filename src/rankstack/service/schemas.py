"""Request and response models of the JSON API (pydantic): the bounds here are the OpenAPI contract.

Why strict models with ``extra="forbid"``: a client sending ``{"k": "10"}`` or ``{"qeury": ...}`` has a
bug; telling it (422, naming the field) beats guessing. Bounds come from :mod:`rankstack.service.state`
so that the schema, the validation and the library checks agree.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from rankstack.service.state import MAX_CANDIDATES, MAX_K, MAX_MEASURES, MAX_QUERY_CHARS

__all__ = ["SearchRequest", "SearchResponse", "RerankRequest", "RerankResponse", "EvaluateRequest",
           "EvaluateResponse", "Health", "ErrorBody", "ERROR_RESPONSES"]

MAX_TEXT_CHARS = 100_000
NOT_BLANK = r"\S"   # JSON Schema patterns search: at least one non-space character


class _Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class SearchRequest(_Request):
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, pattern=NOT_BLANK,
                       description="the query text", examples=["why do cats purr"])
    k: int = Field(10, ge=1, le=MAX_K, description="number of documents to return")
    collection: str | None = Field(None, min_length=1, max_length=200,
                                   description="optional: must name the served collection")


class HitOut(BaseModel):
    rank: int
    docid: str
    score: float
    title: str
    text: str
    snippet: str = Field(description="HTML-escaped excerpt; query terms wrapped in <mark>...</mark>")


class SearchResponse(BaseModel):
    pipeline: str
    collection: str | None
    k: int
    hits: list[HitOut]


class CandidateIn(_Request):
    id: str | None = Field(None, min_length=1, max_length=200, description="a document id of the collection")
    text: str | None = Field(None, min_length=1, max_length=MAX_TEXT_CHARS, pattern=NOT_BLANK,
                             description="a document text (instead of an id)")
    score: float | None = Field(None, allow_inf_nan=False,
                                description="first-stage score, used when the reranker combines scores")


class RerankRequest(_Request):
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, pattern=NOT_BLANK)
    candidates: list[CandidateIn] = Field(min_length=1, max_length=MAX_CANDIDATES,
                                          description="each with exactly one of 'id' or 'text'")
    k: int | None = Field(None, ge=1, le=MAX_K, description="keep the top k (default: all)")
    collection: str | None = Field(None, min_length=1, max_length=200)


class RerankHitOut(BaseModel):
    rank: int
    index: int = Field(description="position of the candidate in the request")
    id: str | None
    score: float


class RerankResponse(BaseModel):
    pipeline: str
    reranker: str
    combined: bool = Field(description="scores combined with the candidates' first-stage scores")
    hits: list[RerankHitOut]


class EvaluateRequest(_Request):
    run: str = Field(min_length=1, description="TREC run text: 'qid Q0 docid rank score tag' lines")
    measures: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(None, min_length=1, max_length=MAX_MEASURES,
                                       description="ir_measures names, e.g. nDCG@10, AP, R@100")
    split: str = Field("test", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    collection: str | None = Field(None, min_length=1, max_length=200)


class EvaluateResponse(BaseModel):
    collection: str | None
    split: str
    queries: int
    mean: dict[str, float]
    per_query: dict[str, dict[str, float]]


class Health(BaseModel):
    status: str
    pipeline: str
    collection: str | None
    workers: int
    queue: int
    in_flight: int
    shed: int


class ErrorDetail(BaseModel):
    field: str | None
    message: str
    fix: str | None
    request_id: str | None


class ErrorBody(BaseModel):
    error: ErrorDetail


ERROR_RESPONSES = {status: {"model": ErrorBody, "description": what} for status, what in (
    (400, "bad request (e.g. the pipeline has no reranker)"), (404, "unknown id, collection or split"),
    (413, "request body too large"), (422, "a field is missing, mistyped or out of bounds"),
    (503, "overloaded: retry after the Retry-After seconds"), (504, "timed out"),
    (500, "internal error (no details; quote the request_id)"))}
