"""``rankstack serve PIPELINE_OR_EXPERIMENT``: flags derived from :class:`rankstack.recipes.serve.ServeConfig`."""

from __future__ import annotations

import argparse

from rankstack.cli._common import add_verb
from rankstack.recipes.config import add_arguments, from_args
from rankstack.recipes.serve import ServeConfig

EXAMPLE = """\
rankstack serve "bm25 % 20 >> reranker(model='.cache/models/ce-scifact-v2')" --collection scifact
rankstack serve examples/scifact.toml --pipeline hybrid --experiments out/scifact --port 8080
curl -s localhost:8000/v1/search -H 'content-type: application/json' \\
     -d '{"query": "microstructural development of white matter", "k": 5}'"""


def register(sub) -> None:
    p = add_verb(sub, "serve",
                 "Serve a pipeline (an expression, or one pipeline of an experiment file) over HTTP: JSON API "
                 "(/v1/search, /v1/rerank, /v1/evaluate, /healthz, OpenAPI at /openapi.json) and the web "
                 "workbench.", EXAMPLE)
    p.add_argument("target", metavar="PIPELINE_OR_EXPERIMENT",
                   help=ServeConfig.__dataclass_fields__["target"].metadata["help"].replace("%", "%%"))
    add_arguments(p, ServeConfig, exclude=("target",))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = from_args(ServeConfig, args)
    from rankstack.service.server import serve  # imported here: the CLI parser stays light

    serve(config)
    return 0
