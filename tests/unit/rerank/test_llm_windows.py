"""Sliding-window bookkeeping (RankGPT, back to front) and the permutation parser on malformed output."""

from __future__ import annotations

import pytest

from rankstack.errors import InputError
from rankstack.rerank.llm.windows import apply_window, parse_permutation, sliding_windows

NUM = [str(i) for i in range(1, 6)]


def test_windows_back_to_front_as_rankgpt():
    # RankGPT: 100 candidates, window 20, step 10 -> [80,100), [70,90), ..., [0,20)
    w = sliding_windows(100, 20, 10)
    assert w[0] == (80, 100) and w[-1] == (0, 20) and len(w) == 9
    assert all(b - a == 20 for a, b in w)


def test_last_window_is_the_full_top_window():
    # 25 = 20 + 5: RankGPT's loop would stop after [5, 25) and never rank positions 0-4 against the rest
    assert sliding_windows(25, 20, 10) == [(5, 25), (0, 20)]
    assert sliding_windows(7, 3, 3) == [(4, 7), (1, 4), (0, 3)]


def test_window_covering_the_list_is_one_window():
    assert sliding_windows(20, 20, 10) == [(0, 20)]
    assert sliding_windows(5, None, 1) == [(0, 5)]
    assert sliding_windows(0, 20, 10) == []


@pytest.mark.parametrize("window,stride", [(20, 0), (20, 21), (1, 1)])
def test_bad_stride_or_window(window, stride):
    with pytest.raises(InputError):
        sliding_windows(50, window, stride)


def test_parse_clean_output():
    order, repaired = parse_permutation("[3] > [1] > [2] > [5] > [4]", NUM)
    assert order == [2, 0, 1, 4, 3]
    assert repaired == {"repeated": 0, "unknown": 0, "missing": 0}


def test_parse_repeated_out_of_range_and_missing():
    # 3 repeated, 9 and 0 out of range, 2 and 4 missing: missing keep their order after the mentioned
    order, repaired = parse_permutation("[3] > [9] > [3] > [5] > [0] > [1]", NUM)
    assert order == [2, 4, 0, 1, 3]
    assert repaired == {"repeated": 1, "unknown": 2, "missing": 2}


def test_parse_garbage_keeps_original_order():
    order, repaired = parse_permutation("I cannot rank these passages.", NUM)
    assert order == [0, 1, 2, 3, 4] and repaired["missing"] == 5


def test_parse_bare_numbers_and_letters():
    assert parse_permutation("2, 1, 3", ["1", "2", "3"])[0] == [1, 0, 2]
    assert parse_permutation("[b] > [C] then A", ["A", "B", "C"])[0] == [1, 2, 0]
    assert parse_permutation("C > A", ["A", "B", "C"])[0] == [2, 0, 1]


def test_apply_window():
    ranking = [10, 11, 12, 13, 14]
    assert apply_window(ranking, 1, 4, [2, 0, 1]) == [10, 13, 11, 12, 14]
    with pytest.raises(ValueError):
        apply_window(ranking, 1, 4, [0, 0, 1])
