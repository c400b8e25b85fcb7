from __future__ import annotations

import numpy as np

from rankstack.robust.synonyms import DictSynonyms, EmbeddingNeighbours


def test_neighbours_are_whole_words_by_cosine():
    vocab = ["[PAD]", "##ing", "the", "cancer", "tumor", "cancers", "leukemia", "car", "xx"]
    e = np.zeros((len(vocab), 3), np.float32)
    e[vocab.index("cancer")] = [1, 0, 0]
    e[vocab.index("tumor")] = [0.95, 0.1, 0]
    e[vocab.index("cancers")] = [1, 0.01, 0]  # same 4-letter prefix: a variant, not a substitute
    e[vocab.index("leukemia")] = [0.8, 0.3, 0]
    e[vocab.index("##ing")] = [1, 0, 0]  # word piece: never a candidate
    e[vocab.index("the")] = [1, 0, 0.01]  # stop word: never a candidate
    e[vocab.index("car")] = [0, 1, 0]
    e[vocab.index("xx")] = [1, 0, 0]  # shorter than 3 letters
    nb = EmbeddingNeighbours(vocab, e, k=5, min_cosine=0.5)
    assert nb.candidates("cancer") == ["tumor", "leukemia"]
    assert nb.candidates("Cancer") == ["tumor", "leukemia"]
    assert nb.candidates("unknownword") == []


def test_dict_synonyms():
    s = DictSynonyms({"a": ["b", "c"]})
    assert s.candidates("A") == ["b", "c"] and s.candidates("z") == []
