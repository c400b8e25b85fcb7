"""rankstack.normalize: per-group min-max / z-score, the constant-group rule, and its three callers."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack import normalize
from rankstack.errors import InputError
from rankstack.normalize import group_offsets, minmax, normalise, zscore


def test_minmax_and_zscore_per_group():
    x = np.array([3.0, 2.0, 1.0, 10.0, 30.0])
    o = np.array([0, 3, 5])
    np.testing.assert_allclose(minmax(x, o), [1.0, 0.5, 0.0, 0.0, 1.0])
    z = zscore(x, o)
    sd = np.sqrt(2 / 3)
    np.testing.assert_allclose(z, [1 / sd, 0.0, -1 / sd, -1.0, 1.0])
    np.testing.assert_allclose(minmax(x), (x - 1) / 29)  # no offsets: one group


@pytest.mark.parametrize("method", ["minmax", "min-max", "zscore", "z-score"])
def test_constant_group_is_zero_under_every_method(method):
    x = np.array([0.1, 0.1, 0.1, 7.0, 2.0, 5.0])
    out = normalise(x, np.array([0, 3, 4, 6]), method)
    assert out[:4].tolist() == [0.0, 0.0, 0.0, 0.0]  # three equal values and a single value
    assert np.ptp(out[4:]) > 0


def test_rounding_in_the_mean_never_turns_a_constant_group_into_plus_minus_one():
    x = np.full(7, 0.1)
    centred = x - np.add.reduce(x) / len(x)
    assert np.all(centred != 0)  # the float mean of seven 0.1s is not exactly 0.1: std > 0 ...
    assert zscore(x).tolist() == [0.0] * 7  # ... yet the constant group is exactly 0


def test_feature_columns_are_independent():
    x = np.array([[1.0, 5.0], [3.0, 5.0], [2.0, 0.0], [2.0, 4.0]])
    out = minmax(x, np.array([0, 2, 4]))
    np.testing.assert_allclose(out, [[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])


def test_none_empty_and_errors():
    x = np.array([1.0, 2.0])
    out = normalise(x, None, "none")
    assert out.tolist() == [1.0, 2.0] and out is not x
    assert normalise(np.zeros(0), None, "zscore").shape == (0,)
    with pytest.raises(InputError, match="unknown normalisation 'l2'"):
        normalise(x, None, "l2")
    with pytest.raises(InputError, match="offsets"):
        normalise(x, np.array([0, 1]), "minmax")  # does not end at n
    with pytest.raises(InputError, match="offsets"):
        normalise(x, np.array([0, 0, 2]), "minmax")  # an empty group
    with pytest.raises(InputError, match="shape"):
        normalise(np.zeros((2, 2, 2)), None, "minmax")


def test_group_offsets():
    assert group_offsets(np.array(["a", "a", "b", "c", "c"])).tolist() == [0, 2, 3, 5]
    assert group_offsets(np.array([])).tolist() == [0]


def test_the_three_callers_agree_on_a_constant_list():
    from rankstack.ltr.data import normalise_features
    from rankstack.rerank.base import normalise as rerank_normalise
    from rankstack.retrieve.fusion import normalise as fusion_normalise
    from rankstack.types import Run

    run = Run.from_dict({"q1": {"a": 2.0, "b": 2.0}, "q2": {"c": 1.0, "d": 3.0}})
    for fusion_name, name in (("min-max", "minmax"), ("z-score", "zscore")):
        fused = dict(zip(zip(run.qids.tolist(), run.docids.tolist()), fusion_normalise(run, fusion_name)))
        assert fused[("q1", "a")] == fused[("q1", "b")] == 0.0
        assert rerank_normalise(np.array([2.0, 2.0]), name).tolist() == [0.0, 0.0]
        feats = normalise_features(np.array([[2.0], [2.0], [1.0], [3.0]], dtype=np.float32),
                                   np.array([0, 2, 4]), name)
        assert feats[:2, 0].tolist() == [0.0, 0.0]
        np.testing.assert_allclose(feats[2:, 0], normalize.normalise(np.array([1.0, 3.0]), None, name))
