"""``rankstack rerank``: flags derived from :class:`rankstack.recipes.reranker_apply.RerankConfig`."""

from __future__ import annotations

import argparse

from rankstack.cli._common import add_verb
from rankstack.recipes.config import add_arguments, from_args
from rankstack.recipes.reranker_apply import RerankConfig

EXAMPLE = """\
rankstack rerank --model .cache/models/ce-scifact --collection scifact --split test --run bm25.run -k 100 --out ce.run
rankstack rerank --model .cache/models/ce-scifact --collection scifact --run hybrid.run -k 100 --interpolate 0.5 \\
    --out ce-interp.run
rankstack rerank --model .cache/models/ce-scifact --collection scifact --run bm25.run --precision onnx-int8 \\
    --threads 2 --out ce.run    # one inference path by name (default auto: measured once per model and CPU)
rankstack rerank --model .cache/models/ce-scifact --collection scifact --run bm25.run -k 100 --execution ray \\
    --workers 2 --out ce.run     # same scores, on Ray actors (--ray-address auto joins a running cluster)"""


def register(sub) -> None:
    p = add_verb(sub, "rerank", "Rerank the top k of a run with a cross-encoder (optionally fused with the "
                                "first-stage score); writes a TREC run.", EXAMPLE)
    add_arguments(p, RerankConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rankstack.recipes import reranker_apply

    print(reranker_apply.run(from_args(RerankConfig, args)).to_text())
    return 0
