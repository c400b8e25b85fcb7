"""Run the service with uvicorn: build the state once, set torch's threads once, log JSON lines.

Why one uvicorn process (no ``--workers`` processes): every process would hold its own copy of the
index and the model; concurrency comes from the bounded thread pool inside the app instead
(:mod:`rankstack.service.pool`), which also sheds load.
"""

from __future__ import annotations

import logging
import sys

from rankstack.recipes.serve import ServeConfig, is_loopback

__all__ = ["serve", "build_app"]

log = logging.getLogger(__name__)


def _log_to_stderr() -> None:
    """Access-log lines are JSON objects: print them bare, one per line, on stderr."""
    access = logging.getLogger("rankstack.service.access")
    if not access.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
        access.setLevel(logging.INFO)
        access.propagate = False


def build_app(config: ServeConfig):
    """The app for ``config``, with torch's intra-op threads set once for the whole process."""
    from rankstack.service.app import create_app

    app = create_app(config)
    if "torch" in sys.modules:  # the pipeline loaded a torch model
        import torch

        torch.set_num_threads(config.torch_threads)
    return app


def serve(config: ServeConfig) -> None:
    """Build the pipeline, then serve it until interrupted (Ctrl-C stops it cleanly)."""
    import uvicorn

    _log_to_stderr()
    if not is_loopback(config.host):
        log.warning("listening on %s: the service is reachable from other machines", config.host)
    app = build_app(config)
    uvicorn.run(app, host=config.host, port=config.port, access_log=False, log_level="info",
                timeout_keep_alive=5, timeout_graceful_shutdown=5)
