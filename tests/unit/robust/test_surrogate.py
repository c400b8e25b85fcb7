"""The surrogate imitates a victim's order through the Trainer and a pairwise loss."""

from __future__ import annotations

import numpy as np

from rankstack.robust.surrogate import MaxSimSurrogate, WordTokenizer, agreement, imitate

VOCAB = ["<unk>"] + [f"w{i}" for i in range(31)]


def test_imitation_improves_agreement(one_torch_thread):
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(len(VOCAB), 16)).astype(np.float32)
    docs = {f"d{i}": " ".join(f"w{j}" for j in rng.integers(1, 31, size=6)) for i in range(40)}
    hidden = rng.normal(size=31)  # the victim: a hidden weight per word, summed over the document

    def victim(doc):
        return sum(hidden[int(w[1:])] for w in doc.split())

    lists, queries = {}, {}
    for q in range(24):
        ids = np.array(sorted(docs, key=lambda d: -victim(docs[d]))[:20])
        ids = ids[rng.permutation(20)]
        sc = np.array([victim(docs[d]) for d in ids])
        order = np.argsort(-sc, kind="stable")
        lists[f"q{q}"] = (ids[order], sc[order])
        queries[f"q{q}"] = " ".join(f"w{j}" for j in range(1, 31))

    def text(ids):
        return [docs[d] for d in ids]

    m = MaxSimSurrogate(emb, WordTokenizer(VOCAB))
    held = dict(list(lists.items())[:6])
    before = agreement(m, held, queries, text)
    res = imitate(m, lists, queries, text, epochs=8, lr=0.05, seed=0, threads=1)
    after = agreement(m, held, queries, text)
    assert res.queries == 24 and res.steps > 0
    assert after > before + 0.2
