"""The attacks never exceed their budget, and they raise the surrogate's score."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.robust.attacks import (UnigramLM, edit_size, max_edits, substitution_attack, trigger_attack,
                                      trigger_pool)
from rankstack.robust.surrogate import MaxSimSurrogate, WordTokenizer
from rankstack.robust.synonyms import DictSynonyms

VOCAB = ["<unk>", "cat", "cats", "feline", "purr", "dog", "bark", "fish", "swim", "the", "water", "kitten", "noise",
         "bowl", "loud", "soft", "tiger"]
SYN = DictSynonyms({"dog": ["kitten", "cat", "tiger"], "fish": ["feline"], "swim": ["purr", "bark"],
                    "water": ["noise", "bowl"], "bark": ["purr"], "bowl": ["water"], "loud": ["soft"]})


def model(seed=0):
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(len(VOCAB), 8)).astype(np.float32)
    emb[VOCAB.index("kitten")] = emb[VOCAB.index("cat")] + 0.1
    return MaxSimSurrogate(emb, WordTokenizer(VOCAB))


def docs(seed, n):
    rng = np.random.default_rng(seed)
    words = ["dog", "swim", "water", "fish", "bark", "bowl", "loud", "the"]
    return [[words[i] for i in rng.integers(len(words), size=int(rng.integers(3, 40)))] for _ in range(n)]


def test_max_edits_is_floor():
    assert max_edits(10, 0.05) == 0 and max_edits(20, 0.05) == 1 and max_edits(100, 0.15) == 15
    assert max_edits(3, 1 / 3) == 1  # float error does not cost an edit


def test_edit_size_counts_words():
    a = "a b c d".split()
    assert edit_size(a, a) == 0
    assert edit_size(a, "x b c d".split()) == 1
    assert edit_size(a, "x y a b c d".split()) == 2
    assert edit_size(a, "a b".split()) == 2


@pytest.mark.parametrize("budget", [0.0, 0.05, 0.1, 0.2, 0.5, 1.0])
def test_attacks_never_exceed_the_budget(budget, one_torch_thread):
    m = model()
    lm = UnigramLM(" ".join(VOCAB[1:]) for _ in range(3))
    pool = trigger_pool(m, lm, min_count=1)
    for i, d in enumerate(docs(1, 12)):
        q = ["cat purr", "feline tiger", "kitten noise", "soft bowl"][i % 4]
        for adv in (substitution_attack(m, q, d, budget, SYN, lm), trigger_attack(m, q, d, budget, pool)):
            allowed = max_edits(len(d), budget)
            assert adv.allowed == allowed
            assert adv.edits == edit_size(d, adv.words) <= allowed
            assert adv.surrogate_after >= adv.surrogate_before - 1e-6


def test_attacks_raise_the_surrogate_score(one_torch_thread):
    m = model()
    d = "dog swim water fish bark dog swim water fish bark".split()
    sub = substitution_attack(m, "cat purr", d, 0.3, SYN)
    assert sub.edits >= 1 and sub.surrogate_after > sub.surrogate_before
    assert all(new in SYN.candidates(old) for old, new in zip(d, sub.words) if old != new)
    pool = trigger_pool(m, UnigramLM([" ".join(VOCAB[1:])] * 3))
    trig = trigger_attack(m, "cat purr", d, 0.2, pool)
    assert trig.words[trig.edits:] == d and trig.surrogate_after > trig.surrogate_before


def test_fluency_filter_refuses_rare_substitutes(one_torch_thread):
    m = model()
    lm = UnigramLM(["dog swim water fish bark"] * 50 + ["kitten cat tiger purr noise bowl feline"])
    d = "dog swim water fish bark".split()
    adv = substitution_attack(m, "cat purr", d, 1.0, SYN, lm, max_logp_drop=0.5)
    assert adv.words == d  # every neighbour is far rarer than the word it would replace


def test_unigram_perplexity():
    lm = UnigramLM(["a b b"])
    assert lm.perplexity(["b"]) < lm.perplexity(["a"]) < lm.perplexity(["zzz"])
