"""PairScorer batching/depth/fusion and the cross-encoder (save/load, CrossEncoder parity, bf16 path,
no process-wide side effects) on a tiny random-init BERT (seconds on a CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rankstack.errors import InputError
from rankstack.rerank.base import PairScorer, combine_scores, normalise
from rankstack.types import Queries, Run
from tests.fixtures.models import make_tiny_bert

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")



@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tinybert") / "model")


# --------------------------------------------------------------------------------------------
# PairScorer base
class CountingScorer(PairScorer):
    """Scores a pair by word overlap; records batch sizes and lengths."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.batches: list[list[int]] = []

    def score_pairs(self, query_texts, doc_texts):
        self.batches.append([len(q) + len(d) for q, d in zip(query_texts, doc_texts)])
        return np.array([len(set(q.split()) & set(d.split())) + len(d) / 1000 for q, d in zip(query_texts, doc_texts)])


DOCS = {"d1": "cats purr", "d2": "dogs bark loudly at night", "d3": "cats and dogs", "d4": "fish",
        "d5": "why do cats purr so much", "d6": "parrots"}
QUERIES = Queries(("q1", "q2"), ("why do cats purr", "dogs bark"))
RUN = Run.from_dict({"q1": {"d1": 5.0, "d2": 4.0, "d3": 3.0, "d4": 2.0, "d5": 1.0, "d6": 0.5},
                     "q2": {"d2": 1.0, "d3": 2.0, "d4": 3.0}}, queries=QUERIES, name="first")


def test_batching_order_invariance_and_length_sorting():
    pairs_q = [QUERIES[q] for q in RUN.qids]
    pairs_d = [DOCS[d] for d in RUN.docids]
    scores = {}
    for bs in (1, 2, 4, 100):
        for sort in (True, False):
            s = CountingScorer(batch_size=bs, sort_by_length=sort)
            scores[(bs, sort)] = s.score(pairs_q, pairs_d)
            if sort and bs == 2:
                flat = [x for b in s.batches for x in b]
                assert flat == sorted(flat, reverse=True)  # length-sorted batches
    ref = scores[(1, False)]
    for v in scores.values():
        np.testing.assert_array_equal(v, ref)
    perm = np.random.default_rng(0).permutation(len(pairs_q))
    shuffled = CountingScorer(batch_size=3).score([pairs_q[i] for i in perm], [pairs_d[i] for i in perm])
    np.testing.assert_array_equal(shuffled, ref[perm])


def test_rerank_depth_keeps_tail_in_first_stage_order():
    out = CountingScorer(documents=DOCS, depth=3)(RUN)
    q1 = [str(d) for d in out.for_query("q1")[0]]
    # top 3 of the input (d1, d2, d3) rescored: d1 (2 overlaps) > d3 (1) > d2 (0); tail d4, d5, d6 kept
    assert q1 == ["d1", "d3", "d2", "d4", "d5", "d6"]
    assert out.queries is QUERIES and len(out) == len(RUN)
    full = CountingScorer(documents=DOCS, depth=None)(RUN)
    assert [str(d) for d in full.for_query("q1")[0]][0] == "d5"  # 3 overlaps wins when reranked


def test_ties_follow_canonical_docid_descending():
    class Const(PairScorer):
        def score_pairs(self, q, d):
            return np.zeros(len(q))

    out = Const(documents=DOCS)(RUN)
    assert [str(d) for d in out.for_query("q2")[0]] == ["d4", "d3", "d2"]


def test_interpolation_and_rrf():
    first = np.array([10.0, 5.0, 0.0])
    rr = np.array([0.0, 1.0, 2.0])
    d = np.array(["a", "b", "c"])
    np.testing.assert_allclose(combine_scores(rr, first, d, "interpolate", alpha=1.0, norm="minmax"), [0, .5, 1])
    np.testing.assert_allclose(combine_scores(rr, first, d, "interpolate", alpha=0.0, norm="minmax"), [1, .5, 0])
    np.testing.assert_allclose(combine_scores(rr, first, d, "interpolate", alpha=0.5, norm="minmax"), [.5, .5, .5])
    z = normalise(np.array([1.0, 2.0, 3.0]), "zscore")
    assert z.mean() == pytest.approx(0) and z.std() == pytest.approx(1)
    assert normalise(np.array([2.0, 2.0]), "minmax").tolist() == [0.0, 0.0]
    rrf = combine_scores(rr, first, d, "rrf", alpha=0.5, rrf_k=60)
    np.testing.assert_allclose(rrf, [1 / 63 + 1 / 61, 2 / 62, 1 / 61 + 1 / 63])
    out = CountingScorer(documents=DOCS, combine="interpolate", alpha=0.0)(RUN)
    assert [str(x) for x in out.for_query("q1")[0]] == [str(x) for x in RUN.for_query("q1")[0]]


def test_bad_arguments_raise_input_errors():
    for kw in ({"depth": 0}, {"batch_size": 0}, {"combine": "max"}, {"alpha": 2}, {"norm": "l2"}):
        with pytest.raises(InputError):
            CountingScorer(**kw)
    with pytest.raises(InputError):
        CountingScorer(documents=DOCS)(QUERIES)  # a reranker needs a run
    with pytest.raises(InputError):
        CountingScorer()(RUN)  # no documents
    with pytest.raises(InputError):
        CountingScorer(documents=DOCS)(RUN.replace(queries=None))


# --------------------------------------------------------------------------------------------
# cross-encoder
def test_cross_encoder_save_load_round_trip_and_crossencoder_parity(tiny_bert, tmp_path):
    from rankstack.rerank.cross_encoder import CrossEncoderReranker

    r = CrossEncoderReranker(str(tiny_bert), documents=DOCS, precision="fp32", max_length=48, batch_size=2)
    q = ["why do cats purr", "dogs bark", "wild lions"]
    d = ["cats purr", "dogs are loyal canines that bark", "fish swim in bowls of water"]
    s = r.score(q, d)
    out = tmp_path / "ce"
    manifest = r.save(out, training={"loss": "listnet", "epochs": 1})
    assert manifest["params"]["max_length"] == 48 and manifest["training"]["loss"] == "listnet"
    assert "model.safetensors" in manifest["files"] and (out / "manifest.json").is_file()
    r2 = CrossEncoderReranker(str(out), precision="fp32")
    assert r2.max_length == 48
    np.testing.assert_allclose(r2.score(q, d), s, rtol=1e-5, atol=1e-6)

    from sentence_transformers import CrossEncoder

    ce = CrossEncoder(str(out), device="cpu")
    raw = ce.predict(list(zip(q, d)), activation_fn=torch.nn.Identity())
    np.testing.assert_allclose(raw, s, rtol=1e-4, atol=1e-5)
    assert np.array_equal(np.argsort(ce.predict(list(zip(q, d)))), np.argsort(s))  # sigmoid: same order

    # tampering is detected
    (out / "config.json").write_text((out / "config.json").read_text() + " ")
    with pytest.raises(InputError, match="checksum"):
        CrossEncoderReranker(str(out))


@pytest.mark.precision
def test_cross_encoder_bf16_path_is_reported_and_close(tiny_bert):
    """Holds on bf16 CPUs and on AVX2-only CPUs / RANKSTACK_BF16=0, where every bf16 choice runs fp32."""
    from rankstack.hardware import bf16_support
    from rankstack.rerank.cross_encoder import CrossEncoderReranker

    native = bf16_support()[0]
    fp32 = CrossEncoderReranker(str(tiny_bert), precision="fp32", max_length=32)
    auto = CrossEncoderReranker(str(tiny_bert), precision="auto", max_length=32)
    assert fp32.precision_used == "fp32"
    assert auto.precision_used == ("bf16" if native else "fp32")
    q, d = ["cats purr"] * 4, ["cats purr", "dogs bark", "fish", "why do cats purr"]
    np.testing.assert_allclose(auto.score(q, d), fp32.score(q, d), atol=0.05)
    fast = CrossEncoderReranker(str(tiny_bert), precision="bf16-weights", max_length=32)
    assert fast.precision_used == ("bf16-weights" if native else "fp32")
    if native:
        assert next(fast.model.parameters()).dtype == torch.bfloat16
        with pytest.raises(InputError, match="bf16"):
            fast.save("never-written")
    else:  # the fallback keeps fp32 weights and gives fp32's scores exactly
        assert next(fast.model.parameters()).dtype == torch.float32
        np.testing.assert_array_equal(fast.score(q, d), fp32.score(q, d))
    with pytest.raises(InputError, match="bf16-weights"):  # the error lists every choice
        CrossEncoderReranker(str(tiny_bert), precision="int4")
    np.testing.assert_allclose(fast.score(q, d), fp32.score(q, d), atol=0.05)
    with pytest.raises(InputError):
        CrossEncoderReranker(str(tiny_bert), precision="fp16")
    with pytest.raises(InputError):
        CrossEncoderReranker(str(tiny_bert), max_length=1000)


def test_cross_encoder_changes_no_process_state(tiny_bert, tiny_collection):
    """Building and using a reranker leaves torch's thread count and the environment as they were."""
    import os

    from rankstack.data.beir import Collection
    from rankstack.registry import Context, build

    before_threads, before_env = torch.get_num_threads(), dict(os.environ)
    target = 1 if before_threads != 1 else 2
    r = build({"name": "reranker", "args": {"model": str(tiny_bert), "threads": target, "max_length": 32}},
              kind="reranker", context=Context(collection=Collection(tiny_collection)))
    assert torch.get_num_threads() == before_threads
    seen = []
    original = r.model.forward

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())  # the requested threads apply while the model runs
        return original(*args, **kwargs)

    r.model.forward = spy
    out = r(Run.from_dict({"q1": {"d1": 2.0, "d6": 1.0}}, queries=Queries(("q1",), ("why do cats purr",))))
    assert len(out) == 2 and seen and set(seen) == {target}
    assert torch.get_num_threads() == before_threads
    assert dict(os.environ) == before_env


def test_reranker_in_a_pipeline_expression(tiny_bert, tiny_collection, tmp_path):
    from rankstack.data.beir import Collection
    from rankstack.pipeline.expression import parse_pipeline
    from rankstack.registry import Context
    from rankstack.rerank.cross_encoder import CrossEncoderReranker

    model_dir = tmp_path / "m"
    CrossEncoderReranker(str(tiny_bert), precision="fp32", max_length=32).save(model_dir)
    coll = Collection(tiny_collection)
    stage = parse_pipeline(f"bm25 % 3 >> reranker(model={str(model_dir)!r}, precision='fp32')",
                           Context(collection=coll))
    run = stage(coll.queries("test"))
    assert set(run.query_ids) == {"q1", "q2", "q3"} and all(len(d) <= 3 for _, d, _ in run.groups())
    with pytest.raises(InputError):
        parse_pipeline("bm25 >> reranker", Context(collection=coll))  # no model

# Training end to end (tiny BERT, seeding, resampling, distillation, export, CLI) moved with the recipe
# to tests/unit/recipes/test_reranker.py.


def test_compiled_reranker_matches_eager_and_falls_back(tiny_bert, monkeypatch, caplog):
    """compile=True: Inductor (frozen weights, static padded shapes) gives eager's scores for batches of
    different lengths and a short last batch; a compile failure runs the eager model with a warning; non-torch paths refuse."""
    from rankstack.rerank.cross_encoder import CrossEncoderReranker

    q = ["cats purr"] * 5
    d = ["cats purr", "dogs bark loudly at night and all day", "fish", "why do cats purr", "parrots talk"]
    eager = CrossEncoderReranker(str(tiny_bert), precision="fp32", max_length=32, batch_size=2)
    compiled = CrossEncoderReranker(str(tiny_bert), precision="fp32", max_length=32, batch_size=2, compile=True)
    np.testing.assert_allclose(compiled.score(q, d), eager.score(q, d), atol=1e-4)
    import shutil

    if shutil.which("g++") or shutil.which("c++"):  # Inductor needs a C++ compiler; without one it falls back
        assert compiled.compile and compiled._compiled is not None

    def broken(model, **kw):
        def run(**features):
            raise RuntimeError("no C++ compiler")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    fallback = CrossEncoderReranker(str(tiny_bert), precision="fp32", max_length=32, compile=True)
    with caplog.at_level("WARNING"):
        np.testing.assert_allclose(fallback.score(q, d), eager.score(q, d), atol=1e-6)
    assert "torch.compile failed" in caplog.text and not fallback.compile
    with pytest.raises(InputError, match="compile"):
        CrossEncoderReranker(str(tiny_bert), precision="torch-int8", compile=True)


def test_pretokenised_batches_pad_like_the_tokenizer(tiny_bert, monkeypatch):
    """score() tokenises every pair once (in chunks, kept as flat int32 arrays) and pads each batch
    itself: the tensors equal the tokenizer's own padding (right and left), and the scores equal one
    forward per pair."""
    from rankstack.rerank import cross_encoder
    from rankstack.rerank.cross_encoder import CrossEncoderReranker

    monkeypatch.setattr(cross_encoder, "PREPARE_CHUNK", 2)  # 5 pairs: three tokenizer calls

    q = ["cats purr", "cats", "why do dogs bark", "fish swim", "parrots"]
    d = ["cats purr loudly", "dogs bark loudly at night and all day long", "fish", "why do cats purr", "talk"]
    rr = CrossEncoderReranker(str(tiny_bert), precision="fp32", max_length=12, batch_size=3)
    prepared = rr.prepare(q, d)
    assert prepared.lengths.tolist() == rr.pair_lengths(q, d).tolist()
    idx = np.array([4, 1, 2])
    for side in ("right", "left"):
        rr.tokenizer.padding_side = side
        ours = rr._pad(prepared.data, idx)
        ref = rr.tokenizer([q[i] for i in idx], [d[i] for i in idx], truncation="longest_first", max_length=12,
                           padding=True, return_tensors="pt")
        assert set(ours) == set(ref.keys())
        for key in ours:
            assert torch.equal(ours[key], ref[key]), (side, key)
    rr.tokenizer.padding_side = "right"
    with torch.inference_mode():
        single = [float(rr.model(**rr.encode([a], [b])).logits) for a, b in zip(q, d)]
    np.testing.assert_allclose(rr.score(q, d), single, atol=1e-5)
    np.testing.assert_allclose(rr.score_pairs(q, d), single, atol=1e-5)
    rr.compile = True  # compiled scoring pads to a length step (capped at max_length) and batch_size rows
    padded = rr._pad(prepared.data, np.array([2]))
    assert tuple(padded["input_ids"].shape) == (3, 12)
    assert torch.equal(padded["input_ids"][1], padded["input_ids"][0])
    assert rr.score_pairs([], []).shape == (0,)


# --------------------------------------------------------------------------------------------
# the first-stage score in the input (Askari et al., ECIR 2023)
class RecordingScorer(CountingScorer):
    def score_pairs(self, query_texts, doc_texts):
        self.seen = getattr(self, "seen", []) + list(zip(query_texts, doc_texts))
        return super().score_pairs(query_texts, doc_texts)


def test_first_score_in_input_writes_the_normalised_score_after_the_query():
    from rankstack.rerank.base import query_with_first_score

    assert query_with_first_score("cats", 0.5, "[SEP]") == "cats [SEP] 50"
    assert query_with_first_score("cats", 1.7, "|") == "cats | 100" and query_with_first_score("c", -1, "|") == "c | 0"
    s = RecordingScorer(documents=DOCS, depth=2, first_score_in_input=True)
    s(RUN)
    seen = dict((d, q) for q, d in s.seen)
    # q1's scores 5 .. 0.5 are normalised over all six candidates, though only the top 2 are rescored
    assert seen[DOCS["d1"]] == "why do cats purr | 100" and seen[DOCS["d2"]] == "why do cats purr | 78"
    assert seen[DOCS["d4"]] == "dogs bark | 100" and seen[DOCS["d3"]] == "dogs bark | 50"
    shallow = RecordingScorer(documents=DOCS, depth=2, first_score_in_input=True, first_score_depth=3)
    shallow(RUN)  # normalised over the top 3 (scores 5, 4, 3) as a model trained on top-3 lists expects
    assert dict((d, q) for q, d in shallow.seen)[DOCS["d2"]] == "why do cats purr | 50"
    plain = RecordingScorer(documents=DOCS, depth=2)
    plain(RUN)
    assert {q for q, _ in plain.seen} == {"why do cats purr", "dogs bark"}


def test_a_run_shallower_than_the_trained_normalisation_depth_is_warned_about(caplog):
    deep = RecordingScorer(documents=DOCS, depth=2, first_score_in_input=True, first_score_depth=100)
    with caplog.at_level("WARNING", logger="rankstack.rerank.base"):
        deep(RUN)
    assert "top 100" in caplog.text and "at most 6 per query" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="rankstack.rerank.base"):
        RecordingScorer(documents=DOCS, depth=2, first_score_in_input=True, first_score_depth=6)(RUN)
    assert caplog.text == ""


def test_first_score_in_input_is_kept_in_the_manifest_and_cannot_be_contradicted(tiny_bert, tmp_path):
    from rankstack.rerank.cross_encoder import CrossEncoderReranker

    r = CrossEncoderReranker(str(tiny_bert), documents=DOCS, precision="fp32", max_length=48,
                             first_score_in_input=True)
    assert r.score_separator == "[SEP]"
    ids = r.encode([r.score_separator.join(["cats ", " 7"])], ["cats purr"])["input_ids"][0].tolist()
    assert ids.count(r.tokenizer.sep_token_id) == 3  # the separator is the special token, not its letters
    r.first_score_depth = 5
    manifest = r.save(tmp_path / "ce")
    assert manifest["params"]["first_score_in_input"] is True and manifest["params"]["first_score_depth"] == 5
    loaded = CrossEncoderReranker(str(tmp_path / "ce"), documents=DOCS, precision="fp32", depth=3)
    assert loaded.first_score_in_input and loaded.first_score_depth == 5
    with_score = loaded(RUN)
    fresh = CrossEncoderReranker(str(tiny_bert), documents=DOCS, precision="fp32", max_length=48, depth=3,
                                 first_score_in_input=True, first_score_depth=5)
    np.testing.assert_allclose(with_score.scores, fresh(RUN).scores, rtol=1e-5, atol=1e-6)
    without = CrossEncoderReranker(str(tiny_bert), documents=DOCS, precision="fp32", max_length=48, depth=3)(RUN)
    assert not np.allclose(with_score.scores, without.scores)  # the score really is in the input
    with pytest.raises(InputError, match="trained with the first-stage score"):
        CrossEncoderReranker(str(tmp_path / "ce"), first_score_in_input=False)
    plain = tmp_path / "plain"
    CrossEncoderReranker(str(tiny_bert), precision="fp32", max_length=48).save(plain)
    assert "first_score_in_input" not in CrossEncoderReranker(str(plain)).manifest["params"]
    with pytest.raises(InputError, match="without the first-stage score"):
        CrossEncoderReranker(str(plain), first_score_in_input=True)


def test_bare_pair_uses_refuse_a_model_that_reads_the_first_stage_score(tiny_bert, tmp_path):
    """Teachers, CUR and the service score bare pairs: a score-in-input model would silently score
    inputs it never saw, so they refuse it with one line naming the model."""
    from rankstack.recipes.student_teacher import cached_teacher_scores
    from rankstack.rerank.base import require_bare_pairs
    from rankstack.rerank.cross_encoder import CrossEncoderReranker

    r = CrossEncoderReranker(str(tiny_bert), precision="fp32", max_length=48, first_score_in_input=True)
    r.save(tmp_path / "ce")
    loaded = CrossEncoderReranker(str(tmp_path / "ce"), precision="fp32")
    with pytest.raises(InputError, match="a distillation teacher scores bare .* first-stage score in its input"):
        cached_teacher_scores(loaded, "x", ["cats"], ["cats purr"], None)
    require_bare_pairs(CrossEncoderReranker(str(tiny_bert), precision="fp32", max_length=48), "a teacher")  # no error
