"""Errors the service turns into JSON: which request field was wrong, and how to fix it.

Why a subclass of InputError: the workbench and tests treat every bad input alike (``InputError``),
while the JSON API can name the field (``{"error": {"field": "k", ...}}``) and pick the status.
"""

from __future__ import annotations

from rankstack.errors import InputError

__all__ = ["FieldError", "Overloaded", "TimedOut", "ClientGone"]


class FieldError(InputError):
    """Bad input in one request field; ``status`` is the HTTP status it maps to (400, 404, 422)."""

    def __init__(self, field: str, problem: str, *, fix: str | None = None, status: int = 422) -> None:
        super().__init__(problem, fix=fix)
        self.field = field
        self.status = status


class Overloaded(Exception):
    """Every worker is busy and the wait queue is full: the request is shed (503 + Retry-After)."""

    def __init__(self, retry_after: int = 1) -> None:
        super().__init__("the service is busy")
        self.retry_after = retry_after


class TimedOut(Exception):
    """The request waited and computed longer than the configured timeout (504)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the request took longer than {seconds:g} s")
        self.seconds = seconds



class ClientGone(Exception):
    """The client disconnected while its request waited: nothing is computed or sent for it."""
