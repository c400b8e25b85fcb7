"""Robustness and adversarial evaluation of rankers: query perturbations, distribution shift,
black-box attacks with an imitation surrogate, and a randomized-smoothing certificate.

Modules: :mod:`perturb` (seeded query perturbations), :mod:`synonyms` (substitution candidates),
:mod:`victims` (score arbitrary document texts the way a pipeline would), :mod:`surrogate` and
:mod:`attacks` (Order-Disorder / PRADA / trigger attacks), :mod:`certify` (CertDR smoothing),
:mod:`evaluation` (perturbation and shift tables), :mod:`report` (JSON, CSV, HTML).
Nothing heavy is imported here.
"""
