"""Snippets: escaped HTML, query terms (stemmed) marked, the densest window chosen."""

from __future__ import annotations

from rankstack.service.snippets import query_terms, snippet


def test_terms_are_stemmed_and_stop_words_dropped():
    assert query_terms("Why do the cats purr?") == {"cat", "purr"}


def test_markup_in_documents_is_escaped_never_interpreted():
    out = snippet("<script>alert(1)</script> cats & dogs", query_terms("cats script"))
    assert "<script>" not in out and "&lt;" in out and "&amp;" in out
    assert "<mark>cats</mark>" in out and "<mark>script</mark>" in out


def test_window_covers_the_densest_part_of_a_long_text():
    text = " ".join(["filler"] * 200 + ["cancer", "cells", "grow"] + ["filler"] * 200)
    out = snippet(text, query_terms("cancer cells"), width=10)
    assert "<mark>cancer</mark> <mark>cells</mark>" in out
    assert out.startswith("…") and out.endswith("…")
    assert out.count("filler") <= 8


def test_texts_without_words_and_without_matches():
    assert snippet("", {"x"}) == ""
    assert snippet("--- !!!", {"x"}) == "--- !!!"
    assert snippet("plain words only", {"zzz"}) == "plain words only"
