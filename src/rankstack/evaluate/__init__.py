"""Evaluation: trec_eval-exact measures over columnar runs, significance-tested comparisons, tables."""

from rankstack.evaluate.compare import Comparison, compare, format_table
from rankstack.evaluate.core import Evaluation, evaluate
from rankstack.evaluate.measures import Measure, parse_measure

__all__ = ["evaluate", "Evaluation", "compare", "Comparison", "format_table", "Measure", "parse_measure"]
