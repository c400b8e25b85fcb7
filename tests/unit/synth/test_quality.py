"""Cleaning and vetting generated queries: labels, quotes, empty, garbage and copied passages."""

from __future__ import annotations

import pytest

from rankstack.synth.quality import clean_query, rejection_reason

PASSAGE = ("Alterations of the architecture of cerebral white matter in the developing human brain can affect "
           "cortical development and result in functional disabilities.")


@pytest.mark.parametrize("raw, clean", [
    ("Query: what affects white matter?", "what affects white matter?"),
    ('  "how does the brain develop"\nmore text', "how does the brain develop"),
    ("\n\n1. Search query: newborn brain MRI", "newborn brain MRI"),
    ("Question 2 - cortical   development", "cortical development"),
    ("", ""),
    ("The user wants to know the answer to the question: What is the Bayesian model? It is", "What is the Bayesian model?"),
    ("A user might type this question into a search engine to find the answer:", ""),
    ('A user might type: "cancer stem cells"', "cancer stem cells"),
    ("How do glioma cells survive? They use A20.", "How do glioma cells survive?"),
    ("Effects of ozone: a review", "Effects of ozone: a review"),
    ('"The user wants to know how to reduce a plate to two membrane problems."',
     "how to reduce a plate to two membrane problems."),
])
def test_clean_query(raw, clean):
    assert clean_query(raw) == clean


@pytest.mark.parametrize("query, reason", [
    ("", "empty"),
    ("brain", "too short"),
    (" ".join(["word"] + [f"w{i}" for i in range(40)]), "too long"),
    ("what is \ufffd\ufffd", "non-text characters"),
    ("12345 67890 !!!", "mostly non-letters"),
    ("brain brain brain matter", "repeated word"),
    ("the architecture of cerebral white matter in the developing human brain", "copy of the passage"),
    ("cerebral white matter in the developing", "copy of the passage"),
    ("how does cerebral white matter affect cortical development", None),
    ("cerebral white matter", None),  # a short keyword phrase from the passage is a fine query
    ("what is the architecture of cerebral white matter in the developing human brain and why", None),
    ("so the architecture of cerebral white matter in the developing human brain can affect cortical "
     "development and then more words", "copy of the passage"),
])
def test_rejection_reason(query, reason):
    assert rejection_reason(query, PASSAGE) == reason
