"""Perturbations are seeded, deterministic, and each does what its name says."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.robust.perturb import (KEYBOARD, PERTURBATIONS, STOPWORDS, casing, drop_stopwords, get_perturbation,
                                      perturb_queries, synonym_substitution, typo_drop, typo_insert, typo_keyboard,
                                      typo_swap, word_order)
from rankstack.robust.synonyms import DictSynonyms
from rankstack.types import Queries

TEXT = "what is the effect of cancer treatment on children"
QUERIES = Queries.from_dict({f"q{i}": t for i, t in enumerate(
    [TEXT, "microstructural development of white matter", "airfoil boundary layer transition", "Vitamin D deficiency",
     "why do cats purr", "loyal dogs bark"])})
SYN = DictSynonyms({"cancer": ["tumour"], "children": ["kids"], "treatment": ["therapy"], "effect": ["impact"]})


def rng(seed=0):
    return np.random.default_rng(seed)


def diff_words(a: str, b: str) -> list[tuple[str, str]]:
    wa, wb = a.split(), b.split()
    assert len(wa) == len(wb)
    return [(x, y) for x, y in zip(wa, wb) if x != y]


@pytest.mark.parametrize("name", [p for p in PERTURBATIONS if p != "paraphrase"])
def test_seeded_and_deterministic(name):
    p = get_perturbation(name, synonyms=SYN)
    a = perturb_queries(QUERIES, p, seed=3)
    b = perturb_queries(QUERIES, p, seed=3)
    assert a.to_dict() == b.to_dict()
    # one generator per query: a subset in another order gives the same texts
    sub = perturb_queries(QUERIES.subset(["q4", "q0"]), p, seed=3)
    assert sub["q0"] == a["q0"] and sub["q4"] == a["q4"]


def test_different_seeds_differ():
    p = get_perturbation("typo_insert")
    outs = {tuple(perturb_queries(QUERIES, p, seed=s).texts) for s in range(5)}
    assert len(outs) > 1


def test_typo_swap_swaps_two_adjacent_letters_in_one_word():
    for s in range(20):
        out = typo_swap(TEXT, rng(s))
        [(old, new)] = diff_words(TEXT, out)
        assert sorted(old) == sorted(new) and len(old) >= 4
        pos = [i for i in range(len(old)) if old[i] != new[i]]
        assert len(pos) == 2 and pos[1] == pos[0] + 1 and old[pos[0]] == new[pos[1]]


def test_typo_drop_deletes_one_letter():
    for s in range(20):
        [(old, new)] = diff_words(TEXT, typo_drop(TEXT, rng(s)))
        assert len(new) == len(old) - 1
        assert any(old[:i] + old[i + 1:] == new for i in range(len(old)))


def test_typo_insert_adds_one_letter():
    for s in range(20):
        [(old, new)] = diff_words(TEXT, typo_insert(TEXT, rng(s)))
        assert len(new) == len(old) + 1 and new[1:-1] != "" and new.isalpha()
        assert any(new[:i] + new[i + 1:] == old for i in range(len(new)))


def test_typo_keyboard_uses_a_neighbouring_key():
    for s in range(20):
        [(old, new)] = diff_words(TEXT, typo_keyboard(TEXT, rng(s)))
        [i] = [i for i in range(len(old)) if old[i] != new[i]]
        assert new[i] in KEYBOARD[old[i]]


def test_n_words_edits_that_many_words():
    out = typo_drop(TEXT, rng(0), n=3)
    assert len(diff_words(TEXT, out)) == 3


def test_casing_keeps_letters():
    out = casing(TEXT, rng(1))
    assert out.lower() == TEXT.lower() and out != TEXT


def test_word_order_is_a_different_permutation():
    for s in range(10):
        out = word_order(TEXT, rng(s))
        assert sorted(out.split()) == sorted(TEXT.split()) and out != TEXT
    assert word_order("cats cats", rng(0)) == "cats cats"


def test_stopwords_removed_content_kept_in_order():
    out = drop_stopwords(TEXT)
    assert out == "effect cancer treatment children"
    assert not set(out.split()) & STOPWORDS
    assert drop_stopwords("what is it") == "what is it"  # nothing but stop words: kept


def test_synonym_substitution_uses_the_table():
    for s in range(10):
        [(old, new)] = diff_words(TEXT, synonym_substitution(TEXT, rng(s), SYN))
        assert new in SYN.candidates(old)
    assert synonym_substitution("nothing here matches", rng(0), SYN) == "nothing here matches"
