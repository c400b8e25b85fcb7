"""Sliding-window bookkeeping and the permutation parser of listwise reranking.

Windows follow RankGPT ("Is ChatGPT Good at Search?", Sun et al., 2023): start at the bottom of the
list and move the window up by ``stride`` so that a relevant document can climb from the bottom to the
top in one pass. Unlike RankGPT's loop, the last window is clamped to the top of the list, so no
document above the last full stride is left out (RankGPT skips the top ``n - window mod stride``
documents' last window when ``n - window`` is not a multiple of ``stride``).

The parser survives what small models write: identifiers in any text, repeated ones (the first
mention counts), out-of-range or unknown ones (ignored) and missing ones (kept in their original
relative order after all mentioned ones).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rankstack.errors import InputError

__all__ = ["sliding_windows", "parse_permutation", "apply_window"]

_BRACKETED = re.compile(r"\[\s*([A-Za-z]|\d+)\s*\]")
_BARE_NUMBER = re.compile(r"(?<![\w.])(\d+)(?![\w.])")
_BARE_LETTER = re.compile(r"(?<![\w])([A-Z])(?![\w])")


def sliding_windows(n: int, window: int | None, stride: int) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` in processing order (bottom first) covering positions ``0..n-1``."""
    if n <= 0:
        return []
    if window is None or window >= n:
        return [(0, n)]
    if window < 2:
        raise InputError(f"window must be at least 2 passages, got {window}")
    if stride < 1 or stride > window:
        raise InputError(f"stride must be between 1 and the window ({window}), got {stride}",
                         fix="RankGPT uses window=20, stride=10")
    out = []
    end = n
    while end - window > 0:
        out.append((end - window, end))
        end -= stride
    out.append((0, window))  # the top window is a full one, overlapping the previous more if needed
    return out


def parse_permutation(text: str, ids: Sequence[str]) -> tuple[list[int], dict[str, int]]:
    """Window positions in the order ``text`` ranks them, and counts of what had to be repaired.

    ``ids`` are the identifiers shown (``"1".."n"`` or ``"A".."T"``). Bracketed identifiers are read
    first; without any, bare numbers (or capital letters) are read.
    """
    index = {s.upper(): k for k, s in enumerate(ids)}
    found = _BRACKETED.findall(text)
    if not found:
        bare = _BARE_NUMBER if ids and ids[0].isdigit() else _BARE_LETTER
        found = bare.findall(text)
    order: list[int] = []
    seen: set[int] = set()
    repaired = {"repeated": 0, "unknown": 0, "missing": 0}
    for tok in found:
        k = index.get(tok.strip().upper())
        if k is None:
            repaired["unknown"] += 1
        elif k in seen:
            repaired["repeated"] += 1
        else:
            seen.add(k)
            order.append(k)
    missing = [k for k in range(len(ids)) if k not in seen]
    repaired["missing"] = len(missing)
    return order + missing, repaired


def apply_window(ranking: list[int], start: int, end: int, order: Sequence[int]) -> list[int]:
    """``ranking`` with positions ``start..end-1`` re-ordered by ``order`` (window positions, best first)."""
    window = ranking[start:end]
    if sorted(order) != list(range(len(window))):
        raise ValueError(f"order {list(order)} is not a permutation of {len(window)} positions")
    return ranking[:start] + [window[k] for k in order] + ranking[end:]
