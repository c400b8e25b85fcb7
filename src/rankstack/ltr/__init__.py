"""Learning to rank over feature vectors: LambdaMART (LightGBM), neural scorers, k-fold evaluation.

Submodules import LightGBM / torch lazily, so importing this package stays light.
"""
