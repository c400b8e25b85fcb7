"""Experiments: TOML files naming pipelines over a collection, run (with cached runs), compared, reported."""

from rankstack.experiment.runner import ExperimentResult, ExperimentSpec, load_experiment, run_experiment

__all__ = ["ExperimentSpec", "ExperimentResult", "load_experiment", "run_experiment"]
