"""In-context reranking (ICR) from attention: "Attention in Large Language Models Yields Efficient
Zero-Shot Re-Rankers" (Chen et al., 2024).

Why: no generation at all -- the documents and then the query sit in one context; a document's
score is the attention the query's tokens pay to its tokens (summed over layers, heads and the
document's tokens, averaged over the query's tokens). Models attend to some positions whatever the
query (position and length biases), so the same forward pass with the content-free query ``"N/A"``
is subtracted: ``score_i = attn(query -> d_i) - attn("N/A" -> d_i)``. Two forward passes per query.

The prompt is plain text (no chat template), as the attention pattern is read, not an answer. The
whole top ``depth`` must fit the context (an error names the tokens and the context length
otherwise). Needs a local transformers backend (attention maps); others raise a clear error.
"""

from __future__ import annotations

import numpy as np

from rankstack.llm.base import LLMBackend
from rankstack.registry import Context, register
from rankstack.rerank.base import DocumentSource
from rankstack.rerank.llm.base import LLMPrecision, LLMStage, backend_from
from rankstack.rerank.llm.prompts import ICR_CALIBRATION, icr_segments

__all__ = ["ICRReranker", "icr_scores"]


def icr_scores(attn_query: np.ndarray, attn_calibration: np.ndarray, n_docs: int) -> np.ndarray:
    """Calibrated document scores from two segment-attention vectors of ``icr_segments`` layout
    (head, ``n_docs`` documents, instruction, query): the documents' entries, query minus "N/A"."""
    return np.asarray(attn_query, np.float64)[1:1 + n_docs] - np.asarray(attn_calibration, np.float64)[1:1 + n_docs]


class ICRReranker(LLMStage):
    """See the module docstring. ``calibrate=False`` keeps the raw attention (for ablations)."""

    name = "llm_icr"
    strategy = "icr"

    def __init__(self, backend: LLMBackend, documents: DocumentSource = None, depth: int | None = 20,
                 max_passage_tokens: int | None = 100, calibrate: bool = True, progress: bool = False) -> None:
        super().__init__(backend, documents, depth, max_passage_tokens, progress)
        self.calibrate = calibrate
        self.check_window(depth)

    def rank_query(self, query: str, docs: list[str]) -> np.ndarray:
        n = len(docs)
        segs = icr_segments(query, docs)
        self.check_prompt(sum(self.backend.count_tokens(segs)), n)
        attn = self.backend.segment_attention(segs, len(segs) - 1)
        if not self.calibrate:
            return np.asarray(attn, np.float64)[1:1 + n]
        base = self.backend.segment_attention(icr_segments(ICR_CALIBRATION, docs), len(segs) - 1)
        return icr_scores(attn, base, n)


@register("llm_icr", kind="reranker")
def build_llm_icr(context: Context | None = None, model: str = "smollm2", depth: int | None = 20,
                  max_passage_tokens: int | None = 100, calibrate: bool = True, threads: int | None = None,
                  cache: bool = True, progress: bool = False, precision: LLMPrecision = "auto") -> ICRReranker:
    """``bm25 % 20 >> llm_icr(model='smollm2')``: in-context reranking from attention, "N/A"-calibrated."""
    backend = backend_from(model, context, cache, threads, precision=precision)
    return ICRReranker(backend, documents=context.collection if context else None, depth=depth,
                       max_passage_tokens=max_passage_tokens, calibrate=calibrate, progress=progress)
