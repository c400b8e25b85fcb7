"""recipes.reranker (train a cross-encoder) and recipes.reranker_apply (rerank a run): end to end on a
tiny random-init BERT (seconds on a CPU), the one loss spec syntax, and folder saves that refuse
to destroy anything."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rankstack.data.beir import Collection
from rankstack.errors import InputError, UnknownComponentError
from tests.fixtures.models import make_tiny_bert

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

TOPICS = [("cats", "purr"), ("dogs", "bark"), ("lions", "tigers"), ("fish", "swim"), ("parrots", "sing"),
          ("goldfish", "bowls"), ("canines", "loyal"), ("felines", "wild"), ("birds", "mimic"),
          ("water", "large"), ("human", "speech"), ("small", "domesticated")]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    """Shared fixture in tests/conftest.py."""


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tinybert") / "model")


def write_topic_collection(folder: Path) -> Path:
    """Twelve topics x 3 documents; one train query per topic (its document 2 relevant) and a test split."""
    folder.mkdir(parents=True, exist_ok=True)
    filler = ["the", "of", "in", "and", "a", "is", "that", "can"]
    rng = np.random.default_rng(0)
    with open(folder / "corpus.jsonl", "w") as fh:
        for t, (a, b) in enumerate(TOPICS):
            for j in range(3):
                words = ([a, b, a, b] if j == 2 else [a, "the"] if j == 0 else [b, "of"]) + list(rng.choice(filler, 4))
                rng.shuffle(words)
                fh.write(json.dumps({"_id": f"t{t}d{j}", "title": "", "text": " ".join(words)}) + "\n")
    with open(folder / "queries.jsonl", "w") as fh:
        for t, (a, b) in enumerate(TOPICS):
            fh.write(json.dumps({"_id": f"q{t}", "text": f"why do {a} {b}"}) + "\n")
            fh.write(json.dumps({"_id": f"r{t}", "text": f"{b} {a}"}) + "\n")
    (folder / "qrels").mkdir(exist_ok=True)
    for split, prefix in (("train", "q"), ("test", "r")):
        with open(folder / "qrels" / f"{split}.tsv", "w") as fh:
            fh.write("query-id\tcorpus-id\tscore\n")
            for t in range(len(TOPICS)):
                fh.write(f"{prefix}{t}\tt{t}d2\t1\n")
    return folder


def config(coll: Path, out: Path, tiny_bert: Path, **kw):
    from rankstack.recipes.reranker import RerankerTrainConfig

    base = dict(collection=str(coll), out=out, base_model=str(tiny_bert), n_negatives=2, negative_depth=10,
                validation=2, epochs=2, batch_size=4, lr=1e-3, max_length=24, precision="fp32", threads=1,
                patience=None, cache_dir=None)
    base.update(kw)
    return RerankerTrainConfig(**base)


def train_history(model: Path) -> list[float]:
    manifest = json.loads((model / "manifest.json").read_text())
    return [h["loss"] for h in manifest["training"]["history"] if h["event"] == "train"]


# --------------------------------------------------------------------------------------------
# training end to end
@pytest.mark.parametrize("options", [{"loss": "listnet"},
                                     {"loss": "ranknet", "curriculum": "recip", "negatives": "random"},
                                     {"loss": "bce", "fn_filter": "self", "fn_mode": "downweight"}])
def test_tiny_bert_trains_end_to_end_and_loss_falls(tiny_bert, tmp_path, options):
    from rankstack.recipes import reranker
    from rankstack.rerank.cross_encoder import CrossEncoderReranker

    coll = write_topic_collection(tmp_path / "topics")
    opts = dict(options)
    if opts.get("fn_filter") == "self":
        opts["fn_filter"] = str(tiny_bert)
    out = tmp_path / "model"
    cfg = config(coll, out, tiny_bert, n_negatives=3, validation=3, validation_depth=10, epochs=20, batch_size=3,
                 lr=3e-3, head_lr_multiplier=2.0, max_length=32, seed=1, **opts)
    report = reranker.run(cfg, progress=False)
    history = train_history(out)
    k = max(1, len(history) // 4)
    assert np.mean(history[-k:]) < 0.8 * np.mean(history[:k])  # the loss falls
    assert report.steps == len(history) and report.validation_queries == 3
    assert len(report.validation_history) >= 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["training"]["config"]["loss"] == options["loss"]
    if "fn_filter" in options:
        assert report.filter_report is not None and report.filter_report["candidates"] > 0
    r = CrossEncoderReranker(str(out), documents=Collection(coll), precision="fp32")
    assert r.max_length == 32
    scores = r.score(["why do cats purr"] * 2, Collection(coll).doc_texts(["t0d2", "t1d2"]))
    assert scores.shape == (2,) and np.all(np.isfinite(scores))


def test_training_is_seeded_including_a_fresh_head(tmp_path):
    """Same seed, same curve and weights, even when the base has no ranking head (the 'minilm' case):
    the head is drawn from the seed, not from torch's per-process random generator state."""
    from rankstack.recipes import reranker
    from rankstack.rerank.cross_encoder import CrossEncoderReranker

    headless = make_tiny_bert(tmp_path / "headless", head=False)
    coll = write_topic_collection(tmp_path / "topics")
    for name in ("a", "b"):
        torch.rand(3)  # whatever else the process drew before must not matter
        reranker.run(config(coll, tmp_path / name, headless, seed=7), progress=False)
    assert train_history(tmp_path / "a") == train_history(tmp_path / "b")
    a, b = (CrossEncoderReranker(str(tmp_path / n), precision="fp32").model.state_dict() for n in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    reranker.run(config(coll, tmp_path / "c", headless, seed=8), progress=False)
    assert train_history(tmp_path / "c") != train_history(tmp_path / "a")


def test_freeze_layers_trains_only_the_upper_blocks_and_head(tiny_bert, tmp_path):
    from safetensors.torch import load_file

    from rankstack.recipes import reranker

    coll = write_topic_collection(tmp_path / "topics")
    out = tmp_path / "model"
    reranker.run(config(coll, out, tiny_bert, freeze_layers=1, epochs=2, lr=3e-3), progress=False)
    before, after = load_file(str(tiny_bert / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert before.keys() == after.keys()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert not any(k.startswith(("bert.embeddings.", "bert.encoder.layer.0.")) for k in changed)  # frozen
    assert any(k.startswith("bert.encoder.layer.1.") for k in changed)  # the upper block trains
    assert any(k.startswith("classifier.") for k in changed)
    assert json.loads((out / "manifest.json").read_text())["training"]["config"]["freeze_layers"] == 1


def test_freeze_layers_bad_values_fail_with_one_line(tiny_bert, tmp_path):
    from rankstack.recipes import reranker

    coll = write_topic_collection(tmp_path / "topics")
    for bad, msg in ((-1, "--freeze-layers must be 0 or a positive integer"), (True, "--freeze-layers must be")):
        with pytest.raises(InputError, match=msg):
            config(coll, tmp_path / "m", tiny_bert, freeze_layers=bad)
    with pytest.raises(InputError, match="--freeze-layers and --lora-rank"):
        config(coll, tmp_path / "m", tiny_bert, freeze_layers=1, lora_rank=4)
    with pytest.raises(InputError, match="more than the model's 2 transformer blocks"):
        reranker.run(config(coll, tmp_path / "m", tiny_bert, freeze_layers=3), progress=False)
    assert not (tmp_path / "m").exists()


def test_resampled_negatives_and_grad_accum(tiny_bert, tmp_path):
    """Each epoch draws its own negatives; grad_accum divides the optimiser steps."""
    from rankstack.recipes import reranker

    coll = write_topic_collection(tmp_path / "topics")
    once = reranker.run(config(coll, tmp_path / "once", tiny_bert, epochs=3, batch_size=2, seed=5), progress=False)
    again = reranker.run(config(coll, tmp_path / "again", tiny_bert, epochs=3, batch_size=2, seed=5,
                                resample_negatives=True, grad_accum=2), progress=False)
    assert again.groups == 3 * once.groups
    assert abs(again.pairs_per_epoch - once.pairs_per_epoch) <= 2  # per epoch, not the total of the rounds
    assert len(again.validation_history) >= 3  # validated once per original epoch by default
    assert once.steps == 3 * -(-once.groups // 2)  # ceil(groups / batch) per epoch, 3 epochs
    assert again.steps == -(-(-(-again.groups // 2)) // 2)  # one pass, a step every 2 batches
    manifest = json.loads((tmp_path / "again" / "manifest.json").read_text())
    assert manifest["training"]["config"]["resample_negatives"] is True
    assert manifest["training"]["trainer"]["grad_accum"] == 2


def test_distillation_mix_packs_teacher_scores(tiny_bert, tmp_path):
    """Groups carry the teacher's score of every item; the mixed loss is (1-w)*loss + w*KL."""
    from rankstack.losses import get_loss
    from rankstack.recipes import reranker
    from rankstack.recipes.reranker_data import DistillationMix

    scores = torch.tensor([[2.0, 0.5, -1.0]])
    rel = torch.tensor([[1.0, 0.0, 0.0]])
    teach = torch.tensor([[0.0, 3.0, 1.0]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    mix = DistillationMix("listnet", weight=0.25)
    want = 0.75 * get_loss("listnet")(scores, rel, mask) + 0.25 * get_loss("listwise_kl")(scores, teach, mask)
    assert torch.allclose(mix(scores, torch.stack([rel, teach], -1), mask), want)
    with pytest.raises(InputError, match="teacher"):
        mix(scores, rel, mask)

    coll = write_topic_collection(tmp_path / "topics")
    report = reranker.run(config(coll, tmp_path / "m", tiny_bert, seed=2, distill="bm25", distill_depth=10,
                                 distill_weight=0.5), progress=False)
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["training"]["trainer"]["loss"]["name"] == "distillation_mix"
    assert report.steps > 0
    with pytest.raises(InputError, match=r"distillation weight must be in \[0, 1\]"):
        config(coll, tmp_path / "x", tiny_bert, distill="bm25", distill_weight=1.5)


def test_export_trainer_checkpoint_to_model_folder(tiny_bert, tmp_path):
    from rankstack.recipes import reranker
    from rankstack.rerank.cross_encoder import CrossEncoderReranker

    coll = write_topic_collection(tmp_path / "topics")
    reranker.run(config(coll, tmp_path / "m", tiny_bert, seed=3, checkpoint_dir=tmp_path / "ckpt"), progress=False)
    reranker.export_checkpoint(tmp_path / "ckpt", tmp_path / "exported", base_model=str(tiny_bert), max_length=24)
    q, d = ["cats purr"] * 3, Collection(coll).doc_texts(["t0d2", "t1d2", "t2d0"])
    a = CrossEncoderReranker(str(tmp_path / "m"), precision="fp32").score(q, d)
    b = CrossEncoderReranker(str(tmp_path / "exported"), precision="fp32").score(q, d)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # best state = the saved model
    exported = json.loads((tmp_path / "exported" / "manifest.json").read_text())
    assert exported["training"]["history"] == json.loads((tmp_path / "ckpt" / "history.json").read_text())


def test_first_score_in_input_trains_on_the_scores_it_reranks_with(tiny_bert, tmp_path, monkeypatch):
    """Askari et al. (ECIR 2023): training pairs carry the same "<query> [SEP] <0-100>" text as reranking."""
    from rankstack.recipes import reranker, reranker_data
    from rankstack.rerank.cross_encoder import CrossEncoderReranker

    seen: list[str] = []
    write = reranker_data.query_with_first_score

    def spy(query, score, separator):
        seen.append(write(query, score, separator))
        return seen[-1]

    monkeypatch.setattr(reranker_data, "query_with_first_score", spy)
    coll = write_topic_collection(tmp_path / "topics")
    out = tmp_path / "m"
    reranker.run(config(coll, out, tiny_bert, first_score_in_input=True, epochs=1), progress=False)
    assert seen and all(t.split(" [SEP] ")[1].isdigit() for t in seen)  # "<query> [SEP] <0-100>"
    assert any(t.endswith(" [SEP] 100") for t in seen)  # a query's top BM25 candidate is written as 100
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["params"]["first_score_in_input"] is True
    assert manifest["params"]["first_score_depth"] == 30  # max(negative_depth 10, validation_depth 30)
    assert CrossEncoderReranker(str(out)).first_score_in_input
    # `rerank --precision auto` calibrates on the inputs it reranks: BM25 retrieved to the model's depth,
    # each pair carrying its score normalised over that depth (never bare pairs)
    from rankstack.cli import main
    from rankstack.recipes.reranker_apply import RerankConfig
    from rankstack.recipes.reranker_apply import run as rerank
    from rankstack.rerank import calibrate

    got = {}
    real = calibrate.calibrate_reranker

    def fp32_only(model, pairs, **kw):
        got["pairs"] = pairs
        return real(model, pairs, **{**kw, "paths": ["fp32"], "rounds": 1})

    monkeypatch.setattr(calibrate, "calibrate_reranker", fp32_only)
    assert main(["retrieve", "--collection", str(coll), "--out", str(tmp_path / "b.run"), "-k", "30",
                 "--cache-dir", "none"]) == 0
    res = rerank(RerankConfig(model=str(out), collection=str(coll), run=tmp_path / "b.run", out=tmp_path / "ce.run",
                              precision="auto", calibration_pairs=12, cache_dir=tmp_path / "cache"), progress=False)
    pairs = got["pairs"]
    assert res.precision == "fp32" and pairs.first_scores is not None and 0 < len(pairs) <= 12
    assert pairs.first_scores.max() == 1.0 and (pairs.first_scores >= 0).all()
    # a corrupt manifest is the loader's one line (naming the file), not a JSON traceback from calibration
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "manifest.json").write_text("{bad")
    with pytest.raises(InputError, match="manifest.json.*not valid JSON"):
        rerank(RerankConfig(model=str(broken), collection=str(coll), run=tmp_path / "b.run", out=tmp_path / "x.run",
                            precision="auto", calibration_pairs=12, cache_dir=tmp_path / "cache"), progress=False)
    assert not (tmp_path / "x.run").exists()
    with pytest.raises(InputError, match="LoRA adapter"):
        config(coll, tmp_path / "a", tiny_bert, first_score_in_input=True, lora_rank=4)


# --------------------------------------------------------------------------------------------
# the config: defaults once, one loss syntax, checks before any work
def test_config_from_toml_keys_and_loss_syntax(tmp_path):
    from rankstack.recipes.config import from_mapping
    from rankstack.recipes.reranker import RerankerTrainConfig, loss_spec

    cfg = from_mapping(RerankerTrainConfig, {"collection": "scifact", "out": "m", "loss": "listnet(temperature=0.5)",
                                             "time_budget_minutes": 2}, source="train.toml")
    assert cfg.out == Path("m") and cfg.n_negatives == 7 and cfg.time_budget_minutes == 2.0
    assert loss_spec(cfg.loss) == {"name": "listnet", "args": {"temperature": 0.5}}
    assert loss_spec("listnet") == "listnet"
    with pytest.raises(InputError, match="n_negative") as err:
        from_mapping(RerankerTrainConfig, {"collection": "c", "out": "m", "n_negative": 3}, source="train.toml")
    assert "train.toml" in str(err.value)
    with pytest.raises(InputError, match="epochs must be a positive integer"):
        from_mapping(RerankerTrainConfig, {"collection": "c", "out": "m", "epochs": 0})
    with pytest.raises(UnknownComponentError, match="nope"):
        RerankerTrainConfig(collection="c", out=Path("m"), loss="nope")
    with pytest.raises(InputError, match="JSON specs are no longer accepted") as err:
        RerankerTrainConfig(collection="c", out=Path("m"), loss='{"name": "listnet", "args": {"temperature": 1}}')
    assert "listnet(temperature=1)" in str(err.value)
    assert RerankerTrainConfig(collection="c", out=Path("m"), n_negatives=0).n_negatives == 0


def test_train_and_rerank_cli(tiny_bert, tmp_path, capsys):
    from rankstack.cli import main

    coll = write_topic_collection(tmp_path / "topics")
    model = tmp_path / "m"
    common = ["--collection", str(coll), "--base-model", str(tiny_bert), "--n-negatives", "2",
              "--negative-depth", "10", "--validation", "2", "--epochs", "2", "--batch-size", "4",
              "--max-length", "24", "--precision", "fp32", "--threads", "1", "--cache-dir", "none"]
    assert main(["train", "reranker", *common, "--out", str(model), "--loss", "listnet(temperature=0.5)",
                 "--report", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["groups"] == 10
    trainer = json.loads((model / "manifest.json").read_text())["training"]["trainer"]
    assert trainer["loss"] == {"name": "listnet", "args": {"temperature": 0.5}}
    assert "wrote" in capsys.readouterr().out
    assert main(["retrieve", "--collection", str(coll), "--out", str(tmp_path / "b.run"), "-k", "10",
                 "--cache-dir", "none"]) == 0
    assert main(["rerank", "--model", str(model), "--collection", str(coll), "--run", str(tmp_path / "b.run"),
                 "-k", "5", "--interpolate", "0.5", "--out", str(tmp_path / "ce.run"), "--precision", "fp32"]) == 0
    lines = (tmp_path / "ce.run").read_text().splitlines()
    assert len(lines) == len((tmp_path / "b.run").read_text().splitlines())
    assert main(["rerank", "--model", str(model), "--collection", str(coll), "--run", str(tmp_path / "b.run"),
                 "-k", "5", "--keep", "3", "--rrf", "--out", str(tmp_path / "rrf.run"), "--precision", "fp32"]) == 0
    assert len((tmp_path / "rrf.run").read_text().splitlines()) == 3 * 12
    capsys.readouterr()
    assert main(["rerank", "--model", str(model), "--collection", str(coll), "--run", str(tmp_path / "b.run"),
                 "--interpolate", "0.5", "--rrf", "--out", str(tmp_path / "x.run")]) == 2
    assert "give one" in capsys.readouterr().err
    assert main(["rerank", "--model", str(model), "--collection", str(coll), "--run", str(tmp_path / "b.run"),
                 "--out", str(tmp_path / "b.run")]) == 2  # the output would overwrite the input run
    assert "input" in capsys.readouterr().err and len((tmp_path / "b.run").read_text().splitlines()) == len(lines)
    assert main(["train", "reranker", "--collection", str(coll), "--out", str(tmp_path / "n"), "--loss", "nope"]) == 2
    assert "nope" in capsys.readouterr().err


def test_old_loss_args_are_answered_with_the_new_spelling(tmp_path, capsys):
    from rankstack.cli import main

    coll = write_topic_collection(tmp_path / "topics")
    assert main(["train", "reranker", "--collection", str(coll), "--out", str(tmp_path / "m"), "--loss", "listnet",
                 "--loss-args", '{"temperature": 1.0}']) == 2
    err = capsys.readouterr().err
    assert "--loss-args is no longer accepted" in err and 'listnet(temperature=1.0)' in err
    assert main(["train", "reranker", "--collection", str(coll), "--out", str(tmp_path / "m"),
                 "--loss", '{"name": "infonce", "args": {"temperature": 0.5}}']) == 2
    assert "infonce(temperature=0.5)" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_out_refuses_a_foreign_folder_an_input_and_needs_overwrite(tiny_bert, tmp_path, capsys):
    from rankstack.cli import main

    coll = write_topic_collection(tmp_path / "topics")
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.txt").write_text("years of work")
    common = ["--collection", str(coll), "--base-model", str(tiny_bert), "--n-negatives", "1", "--validation", "0",
              "--max-steps", "1", "--batch-size", "4", "--max-length", "16", "--precision", "fp32", "--threads", "1",
              "--cache-dir", "none"]
    assert main(["train", "reranker", *common, "--out", str(thesis)]) == 2
    assert "not a rankstack artefact" in capsys.readouterr().err
    assert (thesis / "thesis.txt").read_text() == "years of work"
    assert main(["train", "reranker", *common, "--out", str(coll)]) == 2  # the collection itself
    assert "input" in capsys.readouterr().err and (coll / "corpus.jsonl").is_file()
    assert main(["train", "reranker", *common, "--out", str(coll / "models" / "m")]) == 2  # inside it
    assert "input" in capsys.readouterr().err and not (coll / "models").exists()
    model = tmp_path / "m"
    assert main(["train", "reranker", *common, "--out", str(model)]) == 0
    first = json.loads((model / "manifest.json").read_text())["id"]
    capsys.readouterr()
    assert main(["train", "reranker", *common, "--out", str(model)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert json.loads((model / "manifest.json").read_text())["id"] == first
    assert main(["train", "reranker", *common, "--out", str(model), "--overwrite"]) == 0
    assert json.loads((model / "manifest.json").read_text())["id"] != first
