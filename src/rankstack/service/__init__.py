"""The HTTP search service: a JSON API (``/healthz``, ``/v1/...``) and the web workbench over one pipeline.

``create_app(config_or_state)`` (:mod:`rankstack.service.app`) builds the FastAPI app;
``rankstack serve`` runs it with uvicorn. Imported lazily: FastAPI is an optional extra (``serve``).
"""

from __future__ import annotations

from rankstack._lazy import lazy_getattr

_LAZY = {
    "create_app": "rankstack.service.app",
    "ServiceState": "rankstack.service.state",
    "Hit": "rankstack.service.state",
}

__all__ = list(_LAZY)
__getattr__ = lazy_getattr(__name__, _LAZY)
