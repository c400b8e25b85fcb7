"""ASGI middleware: request ids, one JSON access-log line per request, and the request-body limit.

Why pure ASGI (not ``BaseHTTPMiddleware``): the body limit must refuse an oversized request from its
``Content-Length`` header *before* reading the body, and stop reading a chunked body as soon as it
passes the limit; only the raw ``receive`` channel allows that. Access logs are JSON lines (method,
path, status, ms, request id) so that a log shipper or ``jq`` reads them without a parser.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

__all__ = ["RequestContext", "error_body", "ACCESS_LOG"]

ACCESS_LOG = logging.getLogger("rankstack.service.access")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def error_body(field: str | None, message: str, fix: str | None = None, request_id: str | None = None) -> dict:
    """The one error shape of the API: ``{"error": {"field", "message", "fix", "request_id"}}``."""
    return {"error": {"field": field, "message": message, "fix": fix, "request_id": request_id}}


async def _send_json(send: Any, status: int, body: dict, request_id: str, extra: list | None = None) -> None:
    raw = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode()),
               (b"x-request-id", request_id.encode()), (b"connection", b"close")] + (extra or [])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})


class RequestContext:
    """Gives every HTTP request an id (``X-Request-ID``: the client's if sane, else a new one), logs it
    when done, and enforces ``max_body_bytes`` (413, field ``body``)."""

    def __init__(self, app: Any, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _SAFE_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        start = time.perf_counter()
        status = {"code": 500}
        limit = self.max_body_bytes

        rejected = False  # a 413 went out while the app was reading: drop whatever the app sends

        async def send_wrapper(message: dict) -> None:
            if rejected:
                return
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message = dict(message)
                message["headers"] = list(message.get("headers") or []) + [(b"x-request-id", request_id.encode())]
            await send(message)

        too_large = error_body("body", f"the request body is larger than the limit of {limit} bytes",
                               "send a smaller request (e.g. fewer run lines or candidates)", request_id)
        try:
            length = headers.get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > limit):
                status["code"] = 413 if length.isdigit() else 400
                if length.isdigit():
                    await _send_json(send, 413, too_large, request_id)
                else:
                    await _send_json(send, 400, error_body("content-length", "is not a number", None, request_id),
                                     request_id)
                return
            received = 0

            async def limited_receive() -> dict:
                # a chunked body (no Content-Length) is counted as it arrives; past the limit the client
                # gets 413 at once and the app sees a disconnect, so it stops reading
                nonlocal received, rejected
                if rejected:
                    return {"type": "http.disconnect"}
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        rejected = True
                        status["code"] = 413
                        await _send_json(send, 413, too_large, request_id)
                        return {"type": "http.disconnect"}
                return message

            await self.app(scope, limited_receive, send_wrapper)
        finally:
            ACCESS_LOG.info(json.dumps({
                "method": scope.get("method"), "path": scope.get("path"), "status": status["code"],
                "ms": round((time.perf_counter() - start) * 1000.0, 2), "request_id": request_id}))
