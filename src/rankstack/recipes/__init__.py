"""Workflows: one module and one typed config per workflow; the only place workflows live.

Why: the CLI, experiment/TOML files and the HTTP service all run the same workflows (train a
reranker, cross-validate LTR, simulate clicks, run a ULTR study or an experiment). Each recipe
declares its defaults once, in a frozen dataclass, and exposes ``run(config) -> result``; every
front end derives its options from that config (:mod:`rankstack.recipes.config`) and calls ``run``.
Recipes sit above every library package and below ``cli``/``service`` only.
"""
