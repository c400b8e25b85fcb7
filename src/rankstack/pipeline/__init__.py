"""Stages and their composition."""

from rankstack.pipeline.stage import Cutoff, FunctionStage, Stage, Then, queries_of

__all__ = ["Stage", "Then", "Cutoff", "FunctionStage", "queries_of"]
