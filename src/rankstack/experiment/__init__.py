"""The experiment engine: named pipelines run with content-keyed cached runs, compared, reported.

The TOML file format and the workflow are :mod:`rankstack.recipes.experiment`.
"""

from rankstack.experiment.runner import ExperimentResult, run_cache_key, run_pipelines, save_outputs

__all__ = ["ExperimentResult", "run_pipelines", "save_outputs", "run_cache_key"]
