"""recipes.student (``rankstack train student``): layer choice and truncation, the teacher-score
cache, the Margin-MSE mix, and a tiny random-init teacher distilled end to end into a student that
the reranker loads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rankstack.errors import InputError
from tests.fixtures.models import make_tiny_bert
from tests.unit.recipes.test_reranker import write_topic_collection

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    """Shared fixture in tests/conftest.py."""


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("teacher") / "model", layers=4, seed=3)


# ------------------------------------------------------------------------------------ layers
def test_choose_layers():
    from rankstack.recipes.student_model import choose_layers

    assert choose_layers(6, 2) == [0, 5]
    assert choose_layers(6, 3) == [0, 2, 5]
    assert choose_layers(6, 4, "first") == [0, 1, 2, 3]
    assert choose_layers(6, 6) == list(range(6))
    assert choose_layers(6, 3, "1,3,5") == [1, 3, 5]
    for keep, how in ((0, "spread"), (7, "spread"), (2, "0,9"), (2, "3,1"), (3, "0,1"), (2, "a,b")):
        with pytest.raises(InputError):
            choose_layers(6, keep, how)


def test_truncated_student_keeps_the_chosen_blocks_and_loads(teacher, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from rankstack.recipes.student_model import write_student_init
    from rankstack.rerank.cross_encoder import CrossEncoderReranker

    source = CrossEncoderReranker(str(teacher), precision="fp32")
    info = write_student_init(source, tmp_path / "s", 2, "spread")
    assert info == {"layer_ids": [0, 3], "teacher_layers": 4}
    assert len(source.model.bert.encoder.layer) == 4  # the teacher is not modified
    student = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "s"))
    assert student.config.num_hidden_layers == 2 and len(student.bert.encoder.layer) == 2
    t, s = source.model.state_dict(), student.state_dict()
    for new, old in ((0, 0), (1, 3)):
        key = "bert.encoder.layer.{}.attention.self.query.weight"
        assert torch.equal(s[key.format(new)], t[key.format(old)])
    assert torch.equal(s["classifier.weight"], t["classifier.weight"])
    # all layers kept = the same function as the teacher
    write_student_init(source, tmp_path / "all", 4, "first")
    full = CrossEncoderReranker(str(tmp_path / "all"), precision="fp32")
    pairs = (["why do cats purr"] * 2, ["cats purr", "dogs bark"])
    np.testing.assert_allclose(full.score_pairs(*pairs), source.score_pairs(*pairs), rtol=1e-5, atol=1e-6)
    two = CrossEncoderReranker(str(tmp_path / "s"), precision="fp32")
    assert not np.allclose(two.score_pairs(*pairs), source.score_pairs(*pairs))


# ------------------------------------------------------------------------------------ teacher cache
class CountingTeacher:
    precision_used, max_length = "fp32", 32

    def __init__(self) -> None:
        self.calls = 0

    def score(self, q, d):
        self.calls += 1
        return np.array([len(a) - 0.5 * len(b) for a, b in zip(q, d)], dtype=np.float64)


def test_teacher_scores_are_cached_by_teacher_and_pairs(tmp_path):
    from rankstack.recipes.student_teacher import cached_teacher_scores

    t = CountingTeacher()
    q, d = ["a", "bb", "a"], ["x", "yy", "zzz"]
    first, hit = cached_teacher_scores(t, "f" * 64, q, d, tmp_path)
    again, hit2 = cached_teacher_scores(t, "f" * 64, q, d, tmp_path)
    assert (hit, hit2, t.calls) == (False, True, 1)
    np.testing.assert_array_equal(first, again)
    cached_teacher_scores(t, "e" * 64, q, d, tmp_path)  # another teacher's weights
    cached_teacher_scores(t, "f" * 64, q, ["x", "yy", "zz"], tmp_path)  # other pairs
    assert t.calls == 3
    # a corrupt entry is rebuilt, never trusted
    entry = next(p for p in (tmp_path / "teacher_scores").iterdir() if p.name.startswith("f" * 12))
    np.save(entry / "scores.npy", np.zeros(3))
    again, hit = cached_teacher_scores(t, "f" * 64, q, d, tmp_path)
    assert not hit and t.calls == 4
    np.testing.assert_array_equal(again, first)
    _, hit = cached_teacher_scores(t, "f" * 64, q, d, None)
    assert not hit and t.calls == 5


def test_attach_pair_scores_scores_each_pair_once():
    from rankstack.recipes.reranker_data import Group
    from rankstack.recipes.student_teacher import attach_pair_scores

    g = [Group("q1", "cats", ["d1", "d2"], [1.0, 0.0], [1.0, 1.0], [1, 2], [1.0, 0.0]),
         Group("q1", "cats", ["d2", "d3"], [1.0, 0.0], [1.0, 1.0], [2, 3], [0.0, 0.0])]
    seen = []

    def score(q, d):
        seen.extend(zip(q, d))
        return np.array([float(len(x)) for x in d])

    out = attach_pair_scores(g, lambda ids: [f"text of {i}" * int(i[1]) for i in ids], score)
    assert len(seen) == 3 and len(set(seen)) == 3
    assert out[0].meta["teacher"] == [10.0, 20.0] and out[1].meta["teacher"] == [20.0, 30.0]
    with pytest.raises(InputError, match="teacher returned"):
        attach_pair_scores(g, lambda ids: ids, lambda q, d: np.array([np.nan] * len(q)))


def test_margin_mse_mix():
    from rankstack.losses import get_loss
    from rankstack.recipes.reranker_data import DistillationMix

    scores = torch.tensor([[2.0, 0.5, -1.0]])
    rel = torch.tensor([[1.0, 0.0, 0.0]])
    teach = torch.tensor([[0.0, 3.0, 1.0]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    labels = torch.stack([rel, teach], -1)
    pure = DistillationMix("listnet", weight=1.0, kd="margin_mse")
    # margins: student (1.5, 3.0), teacher (-3, -1): ((1.5+3)^2 + (3+1)^2) / 2
    assert torch.isclose(pure(scores, labels, mask), torch.tensor((4.5 ** 2 + 4.0 ** 2) / 2))
    mix = DistillationMix("listnet", weight=0.5, kd="margin_mse")
    want = 0.5 * get_loss("listnet")(scores, rel, mask) + 0.5 * get_loss("margin_mse")(scores, teach, mask)
    assert torch.allclose(mix(scores, labels, mask), want)
    assert mix.spec()["args"]["kd"]["name"] == "margin_mse"
    with pytest.raises(InputError, match="unknown distillation loss"):
        DistillationMix("listnet", kd="mse")


# ------------------------------------------------------------------------------------ end to end
def config(coll: Path, teacher: Path, out: Path, **kw):
    from rankstack.recipes.student import StudentConfig

    base = dict(teacher=teacher, collection=str(coll), out=out, layers=2, n_negatives=2, negative_depth=10,
                validation=2, validation_depth=10, epochs=12, batch_size=3, grad_accum=1, lr=3e-3, max_length=32,
                precision="fp32", teacher_precision="fp32", threads=1, patience=None, seed=1,
                cache_dir=out.parent / "cache")
    base.update(kw)
    return StudentConfig(**base)


def test_student_distils_end_to_end_and_reuses_teacher_scores(teacher, tmp_path):
    from rankstack.recipes import student
    from rankstack.rerank.cross_encoder import CrossEncoderReranker
    from rankstack.storage import fingerprint

    coll = write_topic_collection(tmp_path / "topics")
    out = tmp_path / "student"
    report = student.run(config(coll, teacher, out, report=tmp_path / "report.json"), progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    info = manifest["training"]["student"]
    assert info["layer_ids"] == [0, 3] and info["teacher_fingerprint"] == fingerprint(teacher)
    assert info["teacher_pairs"] > 0 and info["teacher_scores_cached"] is False
    assert manifest["training"]["trainer"]["loss"]["args"]["kd"]["name"] == "margin_mse"
    losses = [h["loss"] for h in manifest["training"]["history"] if h["event"] == "train"]
    k = max(1, len(losses) // 4)
    assert np.mean(losses[-k:]) < 0.7 * np.mean(losses[:k])  # the student learns the teacher's margins
    r = CrossEncoderReranker(str(out), precision="fp32")
    assert r.model.config.num_hidden_layers == 2 and r.max_length == 32
    assert json.loads((tmp_path / "report.json").read_text())["student"]["layers"] == 2
    assert "2-layer student" in report.to_text()
    # a second student over the same pairs and teacher: the teacher's scores come from the cache
    again = student.run(config(coll, teacher, tmp_path / "kl", kd_loss="listwise_kl", label_weight=0.3,
                               cache_dir=tmp_path / "cache"), progress=False)
    assert again.student["teacher_scores_cached"] is True


def test_student_config_errors(teacher, tmp_path):
    from rankstack.recipes import student

    coll = write_topic_collection(tmp_path / "topics")
    with pytest.raises(InputError, match="--layers"):
        config(coll, teacher, tmp_path / "a", layers=0)
    with pytest.raises(InputError, match="label-weight"):
        config(coll, teacher, tmp_path / "a", label_weight=1.0)
    with pytest.raises(InputError, match="layer-map"):
        config(coll, teacher, tmp_path / "a", layer_map="x,y")
    with pytest.raises(InputError, match="between 1 and the teacher's 4 layers"):
        student.run(config(coll, teacher, tmp_path / "a", layers=5), progress=False)
    with pytest.raises(InputError, match="teacher folder does not exist"):
        student.run(config(coll, tmp_path / "missing", tmp_path / "a"), progress=False)


def test_train_student_cli(teacher, tmp_path, capsys):
    from rankstack.cli import main

    coll = write_topic_collection(tmp_path / "topics")
    out = tmp_path / "cli-student"
    code = main(["train", "student", "--teacher", str(teacher), "--collection", str(coll), "--out", str(out),
                 "--layers", "1", "--n-negatives", "2", "--negative-depth", "10", "--validation", "2",
                 "--validation-depth", "10", "--epochs", "1", "--batch-size", "4", "--max-length", "24",
                 "--precision", "fp32", "--teacher-precision", "fp32", "--threads", "1",
                 "--cache-dir", str(tmp_path / "cache")])
    assert code == 0 and "1-layer student" in capsys.readouterr().out
    assert json.loads((out / "manifest.json").read_text())["params"]["max_length"] == 24
    assert main(["train", "student", "--teacher", str(teacher), "--collection", str(coll), "--out",
                 str(tmp_path / "x"), "--layers", "0"]) == 2
    assert "--layers must be a positive integer" in capsys.readouterr().err


def test_set_attention_dropout(teacher):
    from rankstack.recipes.reranker_data import set_attention_dropout
    from rankstack.rerank.cross_encoder import CrossEncoderReranker

    model = CrossEncoderReranker(str(teacher), precision="fp32").model
    hidden = [m.p for n, m in model.named_modules() if n.endswith("output.dropout")]
    assert set_attention_dropout(model, 0.0) == 4
    assert all(m.attention.self.dropout.p == 0.0 for m in model.bert.encoder.layer)
    assert model.config.attention_probs_dropout_prob == 0.0
    assert [m.p for n, m in model.named_modules() if n.endswith("output.dropout")] == hidden  # untouched
    with pytest.raises(InputError, match="attention dropout"):
        set_attention_dropout(model, 1.0)
