"""The cross-encoder's inference paths (torch int8, ONNX Runtime fp32/int8) and their measured choice,
on a tiny random-init BERT: same inputs, scores that track fp32, cached exports and decisions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rankstack.errors import InputError
from rankstack.types import Qrels, Queries, Run
from tests.fixtures.models import make_tiny_bert

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from rankstack.rerank.cross_encoder import CrossEncoderReranker  # noqa: E402

Q = ["why do cats purr", "dogs bark", "wild lions and tigers", "talking parrots"] * 3
D = ["cats purr in bowls of water", "dogs are loyal and bark at night", "lions and tigers are large wild felines",
     "parrots can mimic human speech"] * 3
D = D[1:] + D[:1]  # mixed relevant / non-relevant pairs


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tinybert_paths") / "model")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("inference_cache")


@pytest.fixture(scope="module")
def fp32_scores(tiny_bert, cache):
    return CrossEncoderReranker(str(tiny_bert), precision="fp32", max_length=32, cache_dir=cache).score(Q, D)


def test_onnx_fp32_equals_torch_fp32(tiny_bert, cache, fp32_scores):
    r = CrossEncoderReranker(str(tiny_bert), precision="onnx-fp32", max_length=32, cache_dir=cache, batch_size=5)
    assert r.precision_used == "onnx-fp32"
    np.testing.assert_allclose(r.score(Q, D), fp32_scores, atol=1e-4)
    exports = list((cache / "onnx").iterdir())
    assert any(p.name.startswith("sequence-classification-fp32-") for p in exports)


@pytest.mark.parametrize("path", ["torch-int8", "onnx-int8"])
def test_int8_paths_track_fp32(tiny_bert, cache, fp32_scores, path):
    r = CrossEncoderReranker(str(tiny_bert), precision=path, max_length=32, cache_dir=cache, batch_size=4)
    s = r.score(Q, D)
    assert r.precision_used == path and np.isfinite(s).all()
    # a random tiny model's scores barely spread, so compare errors with the scores' scale, not correlation
    scale = np.abs(fp32_scores).max()
    assert np.abs(s - fp32_scores).max() < 0.1 * scale
    assert not np.array_equal(s, fp32_scores)  # really a different computation


def test_int8_reranker_saves_the_fp32_weights(tiny_bert, cache, fp32_scores, tmp_path):
    r = CrossEncoderReranker(str(tiny_bert), precision="torch-int8", max_length=32, cache_dir=cache)
    r.save(tmp_path / "saved")
    back = CrossEncoderReranker(str(tmp_path / "saved"), precision="fp32")
    np.testing.assert_allclose(back.score(Q, D), fp32_scores, atol=1e-5)


def test_inference_paths_refuse_a_model_in_training(tiny_bert):
    base = CrossEncoderReranker(str(tiny_bert), precision="fp32")
    with pytest.raises(InputError, match="inference"):
        CrossEncoderReranker(precision="onnx-int8", _module=base.model, _tokenizer=base.tokenizer)
    with pytest.raises(InputError, match="precision"):
        CrossEncoderReranker(str(tiny_bert), precision="int4")


def _pairs():
    from rankstack.rerank.calibrate import calibration_pairs

    docs = {f"d{i}": t for i, t in enumerate(D[:4])}
    queries = Queries(("q1", "q2", "q3", "q4"), tuple(Q[:4]))
    run = Run.from_dict({q: {d: float(5 - j) for j, d in enumerate(docs)} for q in queries.qids}, queries=queries)
    qrels = Qrels.from_dict({"q1": {"d3": 1}, "q2": {"d0": 1}, "q3": {"d1": 1}})
    return calibration_pairs(run, lambda ids: [docs[i] for i in ids], qrels, pairs=10, per_query=4), run, docs


def test_calibration_pairs_are_judged_seeded_and_capped():
    pairs, _, _ = _pairs()
    assert len(pairs) == 10
    assert set(pairs.qids.tolist()) <= {"q1", "q2", "q3"}  # q4 has no judgement
    again, _, _ = _pairs()
    assert again.qids.tolist() == pairs.qids.tolist()
    assert 0.0 <= pairs.ndcg10(np.arange(len(pairs), dtype=float)) <= 1.0


def test_calibrate_reranker_measures_then_reuses_its_decision(tiny_bert, cache):
    from rankstack.rerank.calibrate import calibrate_reranker

    pairs, _, _ = _pairs()
    paths = ["fp32", "torch-int8", "onnx-fp32"]
    d = calibrate_reranker(str(tiny_bert), pairs, max_length=32, batch_size=4, cache_dir=cache, paths=paths, rounds=1)
    assert not d.cached and d.path in paths and [r.path for r in d.results] == paths
    assert d.quality_measure == "nDCG@10" and d.result("fp32").quality is not None
    onnx = d.result("onnx-fp32")
    assert onnx.ok and onnx.pearson > 0.9999  # same function, another runtime
    assert d.result(d.path).items_per_s == max(r.items_per_s for r in d.results if r.ok)
    again = calibrate_reranker(str(tiny_bert), pairs, max_length=32, batch_size=4, cache_dir=cache, paths=paths)
    assert again.cached and again.path == d.path
    other = calibrate_reranker(str(tiny_bert), pairs, max_length=32, batch_size=4, cache_dir=cache, paths=paths,
                               threads=1, rounds=1)
    assert not other.cached  # another thread count is another decision
    with pytest.raises(InputError, match="unknown path"):
        calibrate_reranker(str(tiny_bert), pairs, cache_dir=cache, paths=["fp32", "fp8"])


@pytest.mark.precision
def test_calibration_tries_bf16_only_where_native(tiny_bert, tmp_path, monkeypatch):
    from rankstack.encode.paths import candidate_paths
    from rankstack.hardware import bf16_support
    from rankstack.rerank.cross_encoder import PRECISIONS

    native = bf16_support()[0]
    cands = candidate_paths(PRECISIONS)
    assert ("bf16" in cands) == native and ("bf16-weights" in cands) == native
    assert {"fp32", "torch-int8", "onnx-fp32", "onnx-int8"} <= set(cands)
    monkeypatch.setenv("RANKSTACK_BF16", "0")
    assert "bf16" not in candidate_paths(PRECISIONS)
    assert CrossEncoderReranker(str(tiny_bert), precision="bf16", max_length=16).precision_used == "fp32"


def test_a_score_in_input_model_is_calibrated_on_the_inputs_it_reranks(tiny_bert, tmp_path):
    """Askari et al.'s score-in-input model reads "<query> [SEP] <n>": calibrating it on bare pairs would
    measure (and pick a path for) inputs it never sees. The pairs keep each first-stage score, normalised
    over the model's depth as reranking does, and the scorer is fed exactly reranking's texts."""
    from rankstack.rerank.base import normalised_first_scores
    from rankstack.rerank.calibrate import calibrate_reranker, calibration_pairs

    model = CrossEncoderReranker(str(tiny_bert), precision="fp32", max_length=32, first_score_in_input=True)
    model.first_score_depth = 3
    model.save(tmp_path / "ce")
    docs = {f"d{i}": t for i, t in enumerate(D[:4])}
    queries = Queries(("q1", "q2"), tuple(Q[:2]))
    run = Run.from_dict({q: {d: float(10 - 2 * j) for j, d in enumerate(docs)} for q in queries.qids},
                        queries=queries)
    bare = calibration_pairs(run, lambda ids: [docs[i] for i in ids], pairs=8, per_query=4)
    assert bare.first_scores is None
    with pytest.raises(InputError, match="reads the first-stage score in its input"):
        calibrate_reranker(str(tmp_path / "ce"), bare, max_length=32, cache_dir=tmp_path / "c", paths=["fp32"])
    pairs = calibration_pairs(run, lambda ids: [docs[i] for i in ids], pairs=8, per_query=4, first_score_depth=3)
    # scores 10, 8, 6 | 4: normalised over the top 3 -> 1, 0.5, 0, and the fourth clipped to 0
    np.testing.assert_allclose(pairs.first_scores, [1.0, 0.5, 0.0, 0.0] * 2)
    np.testing.assert_allclose(normalised_first_scores([10.0, 8.0, 6.0, 4.0], 4, None), [1, 2 / 3, 1 / 3, 0])
    seen: list[list[str]] = []
    real_score = CrossEncoderReranker.score

    def recording(self, query_texts, doc_texts):
        seen.append(list(query_texts))
        return real_score(self, query_texts, doc_texts)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(CrossEncoderReranker, "score", recording)
        decision = calibrate_reranker(str(tmp_path / "ce"), pairs, max_length=32, batch_size=4,
                                      cache_dir=tmp_path / "c", paths=["fp32", "onnx-fp32"], rounds=1)
        reranked_inputs: list[list[str]] = []
        reranker = CrossEncoderReranker(str(tmp_path / "ce"), documents=docs, precision="fp32", depth=4)
        mp.setattr(CrossEncoderReranker, "score",
                   lambda self, q, d: reranked_inputs.append(list(q)) or np.zeros(len(q)))
        reranker(run)
    assert decision.path in ("fp32", "onnx-fp32")
    full = max(seen, key=len)
    assert [t.rsplit(" [SEP] ", 1)[1] for t in full] == ["100", "50", "0", "0"] * 2
    assert sorted(full) == sorted(reranked_inputs[0])  # calibration scores what reranking scores
    assert not any(t in Q for t in full)  # never a bare query
