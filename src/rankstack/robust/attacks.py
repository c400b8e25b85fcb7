"""Black-box document attacks under a word budget: gradient-guided substitution and trigger injection.

Threat model (PRADA: Wu et al., "PRADA: Practical Black-box Adversarial Attacks against Neural
Ranking Models", TOIS 2023; Order-Disorder: Liu et al., CCS 2022; topic-oriented attacks: Liu et al.,
"Topic-oriented Adversarial Attacks against Black-box Neural Ranking Models", SIGIR 2023): the attacker
owns one document ranked 51-100 for a query, sees only the victim's rankings, and edits at most
``floor(budget * words)`` words -- substitutions and insertions each count one -- to push it into the
top 10. The attacker imitates the victim with a surrogate (:mod:`rankstack.robust.surrogate`) and:

* ``substitute`` (PRADA-style): the first-order gain ``(e_c - e_w) . grad`` of the surrogate's score
  (MaxSim softened by a log-sum-exp so every token gets a gradient) ranks (position, neighbour)
  pairs; the best few are checked exactly on the surrogate and the best improving one is applied;
  repeat until the budget is spent. Candidates are embedding neighbours (:mod:`synonyms`).
* ``trigger`` (Order-Disorder triggers / topic-oriented injection): words inserted at the start of
  the document, chosen from in-collection words by the same first-order estimate at the inserted slot.

Fluency is kept by a *unigram perplexity proxy* fitted on the collection (no language model is run
per candidate on this CPU budget): a substitute whose log-probability falls more than
``max_logp_drop`` below the original word's is refused, triggers come from words seen ``min_count``
times, and the report gives each adversarial document's proxy-perplexity ratio to the original.
The budget is enforced by construction and re-checked with an independent word diff (:func:`edit_size`).
"""

from __future__ import annotations

import difflib
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rankstack.errors import RankstackError

__all__ = ["max_edits", "edit_size", "UnigramLM", "substitution_attack", "trigger_attack", "Adversarial",
           "BudgetExceeded"]


class BudgetExceeded(RankstackError):
    """An attack produced more edits than its budget allows (a bug: never silently accepted)."""


def max_edits(n_words: int, budget: float) -> int:
    """Edits allowed: ``floor(budget * n_words)`` (a tiny epsilon absorbs float error, never more)."""
    return int(math.floor(budget * n_words + 1e-9))


def edit_size(original: Sequence[str], new: Sequence[str]) -> int:
    """Words substituted, inserted or deleted between two word lists (a word-level diff)."""
    n = 0
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=list(original), b=list(new), autojunk=False).get_opcodes():
        if op == "replace":
            n += max(i2 - i1, j2 - j1)
        elif op == "insert":
            n += j2 - j1
        elif op == "delete":
            n += i2 - i1
    return n


_TOKEN = re.compile(r"[a-z]+")


class UnigramLM:
    """Add-one smoothed unigram model of a collection: the fluency proxy (lower perplexity = more usual)."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.counts: Counter[str] = Counter()
        for t in texts:
            self.counts.update(_TOKEN.findall(t.lower()))
        self.total = sum(self.counts.values())
        self.vocab = len(self.counts) + 1

    def logp(self, word: str) -> float:
        w = "".join(_TOKEN.findall(word.lower()))
        return math.log((self.counts.get(w, 0) + 1) / (self.total + self.vocab))

    def perplexity(self, words: Sequence[str]) -> float:
        if not words:
            return float("nan")
        return math.exp(-sum(self.logp(w) for w in words) / len(words))


@dataclass
class Adversarial:
    method: str
    budget: float
    words: list[str]
    edits: int
    allowed: int
    surrogate_before: float
    surrogate_after: float

    @property
    def text(self) -> str:
        return " ".join(self.words)


def _soft_grad(model, query: str, words: Sequence[str], tau: float = 0.1):
    """Surrogate score, and the gradient of its soft-max version w.r.t. each document token embedding."""
    ids, wid = model.tokenizer.words(list(words), model.max_tokens)
    q = model.tokens(query)
    inp = model.batch([q], [[ids]])
    emb = model.embed(inp["d_ids"]).detach().requires_grad_(True)
    qv = model._norm(model.embed(inp["q_ids"]))
    dv = model._norm(emb)
    sim = torch.einsum("bqd,bltd->blqt", qv, dv).masked_fill(~inp["d_mask"].bool()[:, :, None, :], -1e4)
    w = torch.nn.functional.softplus(model.term_weight(inp["q_ids"]).squeeze(-1) + 1.0) * inp["q_mask"]
    soft = model.scale * (tau * torch.logsumexp(sim / tau, dim=-1) * w[:, None, :]).sum()
    soft.backward()
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        exact = float(model(inp)[0, 0])
    return exact, emb.grad[0, 0, :len(ids)].detach(), ids, wid


def _exact(model, query: str, docs: list[list[str]]) -> np.ndarray:
    return model.score_texts(query, [" ".join(d) for d in docs])


def substitution_attack(model, query: str, words: Sequence[str], budget: float, synonyms, lm: UnigramLM | None = None,
                        max_logp_drop: float = math.log(50.0), shortlist: int = 8) -> Adversarial:
    """PRADA-style greedy substitution guided by the surrogate's gradient (see module doc)."""
    words = list(words)
    allowed = max_edits(len(words), budget)
    cur = list(words)
    changed: set[int] = set()
    before = float(_exact(model, query, [cur])[0])
    score = before
    table = model.embed.weight
    while len(changed) < allowed:
        _, grad, ids, wid = _soft_grad(model, query, cur)
        first: dict[int, int] = {}
        for t, w in enumerate(wid):
            first.setdefault(w, t)
        proposals = []
        for pos, t in first.items():
            if pos in changed:
                continue
            toks = [i for i, w in enumerate(wid) if w == pos]
            cands = [c for c in synonyms.candidates(cur[pos].lower().strip(".,;:()[]\"'"))
                     if lm is None or lm.logp(c) >= lm.logp(cur[pos]) - max_logp_drop]
            for c in cands:
                cid = model.tokenizer.word_id(c)
                if cid is None:
                    continue
                est = float(table[cid] @ grad[t]) - float(sum(table[ids[i]] @ grad[i] for i in toks))
                proposals.append((est, pos, c))
        if not proposals:
            break
        proposals.sort(key=lambda x: -x[0])
        top = proposals[:shortlist]
        trials = []
        for _, pos, c in top:
            d = list(cur)
            d[pos] = c
            trials.append(d)
        exact = _exact(model, query, trials)
        best = int(np.argmax(exact))
        if exact[best] <= score:
            break
        cur, score = trials[best], float(exact[best])
        changed.add(top[best][1])
    edits = edit_size(words, cur)
    if edits > allowed:
        raise BudgetExceeded(f"substitution made {edits} edits, budget {allowed}")
    return Adversarial("substitute", budget, cur, edits, allowed, before, score)


def trigger_pool(model, lm: UnigramLM, min_count: int = 2, exclude: Iterable[str] = ()) -> tuple[list[str], torch.Tensor]:
    """In-collection whole words the tokenizer keeps as one token: the trigger candidates."""
    from rankstack.robust.perturb import STOPWORDS

    bad = set(exclude) | STOPWORDS
    words, ids = [], []
    for w, n in lm.counts.items():
        if n < min_count or len(w) < 3 or w in bad:
            continue
        i = model.tokenizer.word_id(w)
        if i is not None:
            words.append(w)
            ids.append(i)
    return words, torch.tensor(ids, dtype=torch.long)


def trigger_attack(model, query: str, words: Sequence[str], budget: float, pool: tuple[list[str], torch.Tensor],
                   shortlist: int = 16) -> Adversarial:
    """Insert up to the budget's words at the start, each chosen by first-order gain then checked exactly."""
    words = list(words)
    allowed = max_edits(len(words), budget)
    pool_words, pool_ids = pool
    before = float(_exact(model, query, [words])[0])
    cur, score, inserted = list(words), before, 0
    if len(pool_words) == 0:
        allowed = 0
    pool_emb = model.embed.weight[pool_ids] if len(pool_words) else None
    qwords = [w for w in query.lower().split() if w.isalpha()]
    while inserted < allowed:
        slot = ["the"] + cur  # a neutral placeholder word; its gradient scores every candidate
        _, grad, _, wid = _soft_grad(model, query, slot)
        g0 = grad[0]
        est = pool_emb @ g0
        order = torch.argsort(est, descending=True)[:shortlist].tolist()
        cands = list(dict.fromkeys([pool_words[i] for i in order] + qwords))[: shortlist + len(qwords)]
        trials = [[c] + cur for c in cands]
        exact = _exact(model, query, trials)
        best = int(np.argmax(exact))
        if exact[best] <= score:
            break
        cur, score = trials[best], float(exact[best])
        inserted += 1
    edits = edit_size(words, cur)
    if edits > allowed:
        raise BudgetExceeded(f"trigger made {edits} edits, budget {allowed}")
    return Adversarial("trigger", budget, cur, edits, allowed, before, score)
