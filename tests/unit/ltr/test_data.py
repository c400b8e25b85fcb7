"""LTR data on tiny synthetic LETOR files: folds, normalisation, padding, runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rankstack.data.letor import read_letor, write_letor
from rankstack.errors import InputError
from rankstack.ltr.data import (letor_folds, make_folds, no_relevant_queries, normalise, pad_lists,
                                scores_to_run)
from tests.fixtures.letor import synthetic






# folds -------------------------------------------------------------------------------------------
def test_folds_follow_contract_and_letor_readme(letor_dir: Path) -> None:
    folds = letor_folds(letor_dir)
    assert len(folds) == 5
    for f in folds:
        k = f.index
        assert f.test_part == f"S{k}"
        assert f.valid_part == f"S{(k - 2) % 5 + 1}"
        assert set(f.train_parts) == {f"S{i}" for i in range(1, 6)} - {f.test_part, f.valid_part}
        assert set(f.test.query_ids).isdisjoint(f.train.query_ids)
        assert set(f.valid.query_ids).isdisjoint(f.train.query_ids)
    # readme.txt: Fold1 = train S1,S2,S3 / vali S4 / test S5  ==  contract fold 5
    readme_fold1 = next(f for f in folds if f.letor_name == "Fold1")
    assert readme_fold1.test_part == "S5" and readme_fold1.valid_part == "S4"
    assert set(readme_fold1.train_parts) == {"S1", "S2", "S3"}


def test_folds_from_file_list_and_bad_input(letor_dir: Path) -> None:
    files = [letor_dir / f"S{k}.txt" for k in range(1, 6)]
    assert [f.test_part for f in letor_folds(files)] == [f"S{k}" for k in range(1, 6)]
    with pytest.raises(InputError, match="at least 3"):
        letor_folds(files[:2])
    with pytest.raises(InputError, match="does not exist"):
        letor_folds([*files[:4], letor_dir / "nope.txt"])
    (letor_dir / "S3.txt").unlink()
    with pytest.raises(InputError, match="'S3' not found"):
        letor_folds(letor_dir)


def test_folds_refuse_different_feature_counts(letor_dir: Path, tmp_path: Path) -> None:
    """46 vs 48 vs 0 features: an error naming every file and count, never silent zero padding."""
    files = [letor_dir / f"S{k}.txt" for k in range(1, 6)]
    narrow = tmp_path / "S3.txt"
    write_letor(synthetic(12, seed=3, prefix="s3q", n_features=3, name="S3"), narrow)
    mixed = [files[0], files[1], narrow, files[3], files[4]]
    with pytest.raises(InputError, match=r"different feature counts \(.*S1.txt: 5, .*S3.txt: 3, .*S5.txt: 5\)") as err:
        letor_folds(mixed)
    assert "n_features=5" in str(err.value) and "\n" not in str(err.value)
    empty = tmp_path / "S4.txt"
    empty.write_text("".join(f"0 qid:e{i} #docid = x{i}\n" for i in range(3)))
    with pytest.raises(InputError, match="S4.txt: 0"):
        letor_folds([files[0], files[1], files[2], empty, files[4]])
    parts = [read_letor(f) for f in mixed]
    with pytest.raises(InputError, match="different feature counts"):
        make_folds(parts)
    # declaring the width accepts a narrower part whose trailing features are omitted zeros ...
    folds = letor_folds(mixed, n_features=5)
    assert all(f.train.n_features == f.test.n_features == 5 for f in folds)
    assert np.all(folds[2].test.features[:, 3:] == 0)  # S3 is fold 3's test part
    np.testing.assert_array_equal(folds[2].test.features[:, :3], read_letor(narrow).features)
    # ... but never a part using more features than declared
    with pytest.raises(InputError, match="feature id 5 exceeds the expected 4"):
        letor_folds(mixed, n_features=4)
    with pytest.raises(InputError, match="more than the declared 4 features"):
        make_folds(parts, n_features=4)


def test_folds_refuse_shared_queries() -> None:
    a = synthetic(3, seed=1, name="A")
    with pytest.raises(InputError, match="appears in partitions"):
        make_folds([a, synthetic(3, seed=2, prefix="x", name="B"), a])


# normalisation and padding ---------------------------------------------------------------------------
def test_minmax_and_zscore_are_per_query() -> None:
    data = synthetic(5)
    data.features[:, 4] = 3.0  # a constant feature becomes 0
    off = data.group_offsets()
    mm = normalise(data, "minmax").features
    zs = normalise(data, "zscore").features
    for s, e in zip(off[:-1], off[1:]):
        np.testing.assert_allclose(mm[s:e, :4].min(0), 0, atol=1e-6)
        np.testing.assert_allclose(mm[s:e, :4].max(0), 1, atol=1e-6)
        np.testing.assert_allclose(zs[s:e, :4].mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(zs[s:e, :4].std(0), 1, atol=1e-4)
    assert np.all(mm[:, 4] == 0) and np.all(zs[:, 4] == 0)
    assert normalise(data, "none") is data
    with pytest.raises(InputError, match="minmax"):
        normalise(data, "l2")


def test_pad_lists_mask_and_unpad_round_trip() -> None:
    data = synthetic(6)
    sizes = data.group_sizes()
    p = pad_lists(data)
    assert p.features.shape == (6, sizes.max(), data.n_features)
    assert p.mask.sum(1).tolist() == sizes.tolist()
    assert np.all(p.features[~p.mask] == 0) and np.all(p.labels[~p.mask] == 0)
    assert p.qids == data.query_ids
    row_scores = np.arange(len(data), dtype=float)
    padded = np.zeros(p.mask.shape)
    padded[p.mask] = row_scores[p.rows[p.mask]]
    np.testing.assert_array_equal(p.unpad(padded, len(data)), row_scores)
    cut = pad_lists(data, max_len=4)
    assert cut.list_size == 4 and cut.mask.sum(1).max() == 4
    with pytest.raises(InputError):
        pad_lists(data, max_len=0)


def test_no_relevant_queries_and_run() -> None:
    data = synthetic(8)
    assert {"q3", "q7"} <= set(no_relevant_queries(data))
    run = scores_to_run(data, np.zeros(len(data)))
    assert len(run) == len(data)
    with pytest.raises(InputError, match="scores for"):
        scores_to_run(data, np.zeros(3))
