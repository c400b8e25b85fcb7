"""LLM rerankers, each a Stage usable in pipeline expressions:

``llm_pointwise`` (yes/no log-odds), ``llm_query_likelihood`` (UPR: the query's likelihood after the
passage), ``llm_prp`` (pairwise, both orders; allpairs/sorting/sliding),
``llm_listwise`` (RankGPT sliding windows, generated permutations), ``llm_first`` (FIRST: first-token
logits), ``llm_fullrank`` (one context), ``llm_icr`` (attention, calibrated). Importing this module
registers them; backends (and torch) load only when a strategy is built.
"""

from __future__ import annotations

from rankstack.rerank.llm import icr, listwise, pointwise, prp, query_likelihood  # noqa: F401  (registers them)
from rankstack.rerank.llm.icr import ICRReranker
from rankstack.rerank.llm.listwise import ListwiseReranker
from rankstack.rerank.llm.pointwise import PointwiseLLMReranker
from rankstack.rerank.llm.prp import PRPReranker
from rankstack.rerank.llm.query_likelihood import QueryLikelihoodReranker

__all__ = ["PointwiseLLMReranker", "QueryLikelihoodReranker", "PRPReranker", "ListwiseReranker", "ICRReranker"]
