"""Template rendering for the workbench: one autoescaping Jinja2 environment, URL building, headers.

Why our own environment (not ``Jinja2Templates`` defaults): autoescaping is switched on explicitly for
every template, and the only markup let through from data is ``<mark>`` in search snippets, which
:func:`safe_snippet` re-checks instead of trusting.
"""

from __future__ import annotations

import functools
import html
import math
import re
from typing import Any
from urllib.parse import quote, urlencode

from markupsafe import Markup

__all__ = ["render", "safe_snippet", "page_url", "SECURITY_HEADERS"]

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
                               "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

_MARK = re.compile(r"(</?mark>)")


def safe_snippet(snippet: str) -> Markup:
    """A snippet that is already HTML-escaped with ``<mark>`` around query terms, made safe to insert:
    every tag other than ``<mark>``/``</mark>`` and every stray ``<``, ``>`` or unknown entity is escaped."""
    parts = _MARK.split(str(snippet))
    out = []
    for part in parts:
        if part in ("<mark>", "</mark>"):
            out.append(part)
        else:
            # escape anything that is not an already-escaped entity
            out.append(html.escape(html.unescape(part), quote=False))
    text = "".join(out)
    opened = text.count("<mark>") - text.count("</mark>")
    return Markup(text + "</mark>" * max(0, opened))


def fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def signed(value: float, digits: int = 4) -> str:
    if value is None or math.isnan(value):
        return "–"
    text = f"{value:+.{digits}f}"
    return text[1:] if float(text) == 0 else text   # no sign on a zero (nor on a rounded-to-zero) delta


def page_url(root: str, *parts: str, **query: Any) -> str:
    """``root/part/part?query``: every part percent-encoded (a qid with '/' stays one segment)."""
    path = root.rstrip("/") + "/" + "/".join(quote(str(p), safe="") for p in parts)
    q = {k: v for k, v in query.items() if v is not None}
    return path + ("?" + urlencode(q) if q else "")


@functools.lru_cache(maxsize=1)
def _env():
    import jinja2

    from rankstack.service.workbench import TEMPLATE_DIR

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(fmt=fmt, signed=signed, snippet=safe_snippet)
    return env


def render(request: Any, template: str, status: int = 200, headers: dict[str, str] | None = None, **context: Any):
    """An HTMLResponse of ``template`` with the security headers; ``url(...)`` builds links under the
    app's root path."""
    from fastapi.responses import HTMLResponse

    root = request.scope.get("root_path", "") or ""
    body = _env().get_template(template).render(url=lambda *p, **q: page_url(root, *p, **q),
                                                static=lambda name: page_url(root, "static", name), **context)
    return HTMLResponse(body, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})
