"""The web workbench: a search page over the served pipeline and a browser over experiment outputs.

Why server-rendered pages with a little vanilla JavaScript: the workbench ships inside the Python
package (no Node build step, nothing fetched from a CDN, works offline) and every page is a plain
link a researcher can paste into a note; the JavaScript only sorts tables in place and expands texts,
and every sort also works as a link without it.

``mount_workbench(app)`` adds the pages to a FastAPI app whose ``app.state.service`` holds the served
state (``.pipeline_spec``, ``.collection``, ``.experiments``, ``.search(query, k)``, see
:mod:`rankstack.service.app`). Everything shown is escaped (document texts are untrusted); URL names
are looked up among the served experiments, never joined to a path.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["mount_workbench", "STATIC_DIR", "TEMPLATE_DIR"]

STATIC_DIR = Path(__file__).parent / "static"
TEMPLATE_DIR = Path(__file__).parent / "templates"


def mount_workbench(app) -> None:
    """Add the workbench pages (``/``, ``/search``, ``/experiments``...) and ``/static`` to ``app``."""
    from fastapi.staticfiles import StaticFiles

    from rankstack.service.workbench.experiments import ExperimentStore
    from rankstack.service.workbench.pages import router

    app.state.workbench_store = ExperimentStore()
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="workbench-static")
