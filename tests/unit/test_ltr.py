"""LTR on tiny synthetic LETOR data: folds, normalisation, padding, LambdaMART persistence, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rankstack.data.letor import LetorData, read_letor, write_letor
from rankstack.errors import InputError
from rankstack.ltr.data import (letor_folds, make_folds, no_relevant_queries, normalise, pad_lists,
                                scores_to_run)


def synthetic(n_queries: int = 8, seed: int = 0, prefix: str = "q", n_features: int = 5,
              name: str = "S") -> LetorData:
    """Queries with 4-9 documents; label depends on feature 0 (so a model can learn it)."""
    rng = np.random.default_rng(seed)
    qids, docids, labels, feats = [], [], [], []
    for q in range(n_queries):
        n = int(rng.integers(4, 10))
        x = rng.random((n, n_features)).astype(np.float32)
        y = np.digitize(x[:, 0], [0.5, 0.8])
        y[np.argmax(x[:, 0])] = 2
        if q % 4 == 3:
            y[:] = 0  # a query without relevant documents
        for i in range(n):
            qids.append(f"{prefix}{q}")
            docids.append(f"{prefix}{q}d{i}")
            labels.append(int(y[i]))
            feats.append(x[i])
    return LetorData(np.array(qids), np.array(docids), np.array(labels), np.vstack(feats), name=name)


@pytest.fixture
def letor_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "letor"
    folder.mkdir()
    for k in range(1, 6):
        write_letor(synthetic(12, seed=k, prefix=f"s{k}q", name=f"S{k}"), folder / f"S{k}.txt")
    return folder


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


# LambdaMART ----------------------------------------------------------------------------------------
lightgbm = pytest.importorskip("lightgbm")


def _fitted(**kw):
    from rankstack.ltr.gbdt import LambdaMART

    train, valid = synthetic(40, seed=1), synthetic(12, seed=2, prefix="v")
    return LambdaMART(num_boost_round=30, early_stopping_rounds=10, min_data_in_leaf=5, **kw).fit(train, valid)


def test_lambdamart_learns_and_round_trips(tmp_path: Path) -> None:
    from rankstack.evaluate import evaluate
    from rankstack.ltr.gbdt import LambdaMART

    model = _fitted()
    test = synthetic(12, seed=3, prefix="t")
    run = model.predict(test)
    assert evaluate(run, test.qrels(), ["nDCG@10"]).mean["nDCG@10"] > 0.5
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "model.txt").read_text().startswith("tree")
    loaded = LambdaMART.load(tmp_path / "m")
    np.testing.assert_allclose(loaded.predict_scores(test), model.predict_scores(test))
    # a changed model file is refused
    path = tmp_path / "m" / "model.txt"
    path.write_text(path.read_text().replace("num_leaves", "num_leaves ", 1))
    with pytest.raises(InputError, match="checksum"):
        LambdaMART.load(tmp_path / "m")


def test_lambdamart_is_deterministic_and_checks_input() -> None:
    from rankstack.ltr.gbdt import LambdaMART

    test = synthetic(5, seed=4, prefix="t")
    np.testing.assert_array_equal(_fitted(seed=3).predict_scores(test), _fitted(seed=3).predict_scores(test))
    with pytest.raises(InputError, match="did you mean 'num_leaves'"):
        LambdaMART(num_leaf=7)
    with pytest.raises(InputError, match="not trained"):
        LambdaMART().predict(test)
    with pytest.raises(InputError, match="needs a validation set"):
        LambdaMART(tune=True).fit(synthetic(5))
    with pytest.raises(InputError, match="features"):
        _fitted().predict(synthetic(3, n_features=4))


def test_lambdamart_search_uses_validation_only() -> None:
    model = _fitted(tune=True, grid={"num_leaves": [3, 7], "learning_rate": [0.05, 0.1]}, max_trials=3)
    assert len(model.trials) == 3
    best = max(model.trials, key=lambda t: t.valid_ndcg10)
    assert {k: model.tree_params[k] for k in best.params} == best.params


# cross-validation and CLI ------------------------------------------------------------------------------
def test_cli_ltr_cv_json_shape(letor_dir: Path, tmp_path: Path, capsys) -> None:
    from rankstack.cli import main

    out = tmp_path / "cv.json"
    spec = "lambdamart(num_boost_round=20, min_data_in_leaf=5)"
    assert main(["ltr", "cv", "--folds", str(letor_dir), "--model", spec, "--json", str(out)]) == 0
    payload = json.loads(out.read_text())
    for m in ("nDCG@1", "nDCG@3", "nDCG@5", "nDCG@10", "AP"):
        assert 0 <= payload[m] <= 1
    assert len(payload["folds"]) == 5
    assert [f["test"] for f in payload["folds"]] == ["S1", "S2", "S3", "S4", "S5"]
    assert payload["no_relevant_queries"] == 15  # 3 of 12 queries per partition
    text = capsys.readouterr().out
    assert "scores 0" in text and "15 of 60" in text


def test_cli_ltr_cv_bad_model(letor_dir: Path, capsys) -> None:
    from rankstack.cli import main

    assert main(["ltr", "cv", "--folds", str(letor_dir), "--model", "{nope"]) == 2
    assert "JSON specs are no longer accepted" in capsys.readouterr().err
    assert main(["ltr", "cv", "--folds", str(letor_dir), "--model", "lambdamrt"]) == 2
    assert "did you mean 'lambdamart'" in capsys.readouterr().err


# neural scorers -------------------------------------------------------------------------------------
def _neural(arch: str, **kw):
    pytest.importorskip("torch")
    from rankstack.ltr.neural import NeuralRanker

    args = {"epochs": 8, "batch_size": 4, "lr": 1e-2, **kw}
    return NeuralRanker(arch, **args).fit(synthetic(24, seed=1), synthetic(8, seed=2, prefix="v"))


@pytest.mark.parametrize("arch,loss", [("mlp", "listnet"), ("attention", "lambdaloss"),
                                       ("mlp", "approxndcg")])
def test_neural_learns_and_round_trips(arch: str, loss: str, tmp_path: Path) -> None:
    from rankstack.evaluate import evaluate
    from rankstack.ltr.neural import NeuralRanker

    model = _neural(arch, loss=loss)
    test = synthetic(12, seed=3, prefix="t")
    assert evaluate(model.predict(test), test.qrels(), ["nDCG@10"]).mean["nDCG@10"] > 0.5
    model.save(tmp_path / "m")
    loaded = NeuralRanker.load(tmp_path / "m")
    np.testing.assert_allclose(loaded.predict_scores(test), model.predict_scores(test), rtol=1e-6)
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(InputError, match="checksum"):
        NeuralRanker.load(tmp_path / "m")


def test_attention_masks_padding_and_ignores_order() -> None:
    torch = pytest.importorskip("torch")
    model = _neural("attention", epochs=1)
    x = torch.rand(1, 6, 5)
    mask = torch.tensor([[True] * 4 + [False] * 2])
    base = model.module((x, mask))[0, :4]
    x2 = x.clone()
    x2[0, 4:] = 100.0  # garbage in padding must not change real scores
    torch.testing.assert_close(model.module((x2, mask))[0, :4], base)
    perm = torch.tensor([2, 0, 3, 1, 4, 5])
    torch.testing.assert_close(model.module((x[:, perm], mask))[0, :4], base[perm[:4]])


def test_neural_checks_input() -> None:
    pytest.importorskip("torch")
    from rankstack.ltr.neural import NeuralRanker

    with pytest.raises(InputError, match="unknown argument"):
        NeuralRanker("mlp", d_model=3)
    with pytest.raises(InputError, match="architecture"):
        NeuralRanker("cnn")
    with pytest.raises(InputError, match="epochs"):
        NeuralRanker("mlp", epochs=0)
    with pytest.raises(InputError, match="not trained"):
        NeuralRanker("mlp").predict(synthetic(2))


# features over a text collection ---------------------------------------------------------------------
def test_feature_extractor_and_ltr_stage(tiny_collection: Path, tmp_path: Path) -> None:
    from rankstack.data.beir import Collection
    from rankstack.ltr.features import BASE_FEATURES, FeatureExtractor, LTRReranker, train_ltr_reranker
    from rankstack.pipeline.expression import parse_pipeline
    from rankstack.registry import Context
    from rankstack.retrieve.bm25 import BM25Retriever

    coll = Collection(tiny_collection)
    bm25 = BM25Retriever.from_collection(coll)
    ext = FeatureExtractor(coll)
    queries = coll.queries("test")
    run = (bm25 % 5)(queries)
    data = ext.extract(run, coll.qrels("test"))
    assert data.features.shape == (len(run), len(BASE_FEATURES))
    col = {n: i for i, n in enumerate(BASE_FEATURES)}
    np.testing.assert_allclose(data.features[:, col["bm25"]], run.scores, rtol=1e-5)  # same BM25
    assert data.labels[(data.qids == "q1") & (data.docids == "d6")].tolist() == [2]
    assert np.all(data.features[:, col["query_coverage"]] <= 1)
    model = {"name": "lambdamart", "args": {"num_boost_round": 5, "min_data_in_leaf": 1,
                                            "min_sum_hessian_in_leaf": 0.0}}
    rr = train_ltr_reranker(coll, bm25 % 5, split="test", model=model, valid_fraction=0.34, extractor=ext)
    rr.save(tmp_path / "ltr")
    loaded = LTRReranker.load(tmp_path / "ltr", coll)
    stage = parse_pipeline(f"bm25 % 5 >> ltr(model='{tmp_path / 'ltr'}')", Context(collection=coll))
    out = stage(queries)
    np.testing.assert_allclose(out.scores, loaded(run).scores)
    assert set(zip(out.qids, out.docids)) == set(zip(run.qids, run.docids))
    with pytest.raises(InputError, match="reranks a Run"):
        loaded(queries)


def test_cli_ltr_train_then_rerank(tiny_collection: Path, tmp_path: Path, capsys) -> None:
    from rankstack.cli import main

    out = tmp_path / "ltr"
    spec = "lambdamart(num_boost_round=5, min_data_in_leaf=1, min_sum_hessian_in_leaf=0.0)"
    assert main(["ltr", "train", "--collection", str(tiny_collection), "--split", "test", "--first-stage",
                 "bm25 % 5", "--model", spec, "--valid-fraction", "0.34", "--out", str(out),
                 "--cache-dir", "none"]) == 0
    assert (out / "manifest.json").is_file() and (out / "model" / "model.txt").is_file()
    run = tmp_path / "ltr.run"
    assert main(["retrieve", "--collection", str(tiny_collection), "--retriever",
                 f"bm25 % 5 >> ltr(model='{out}')", "--out", str(run), "--cache-dir", "none"]) == 0
    # the CLI's run is exactly the saved LTR model applied to BM25's top 5 of every query
    from rankstack.data.beir import Collection
    from rankstack.data.trec import read_run
    from rankstack.ltr.features import LTRReranker
    from rankstack.retrieve.bm25 import BM25Retriever

    coll = Collection(tiny_collection)
    first = (BM25Retriever.from_collection(coll) % 5)(coll.queries("test"))
    expected = LTRReranker.load(out, coll)(first)
    got = read_run(run)
    assert got.query_ids == first.query_ids
    assert all(len(d) == min(5, len(first.for_query(q)[0])) for q, d, _ in got.groups())
    assert set(zip(got.qids, got.docids)) == set(zip(first.qids, first.docids))
    want = {(q, d): s for q, d, s in zip(expected.qids, expected.docids, expected.scores)}
    np.testing.assert_allclose([want[(q, d)] for q, d in zip(got.qids, got.docids)], got.scores, rtol=1e-5)
