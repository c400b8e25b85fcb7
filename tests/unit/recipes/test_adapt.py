"""recipes.adapt: label-free adaptation end to end on a tiny random-init BERT (seconds): the model is a
cross-encoder artefact that rerank loads, the report is written next to it, held-back synthetic
queries validate it; training data (ICT positives, negatives without the source, GPL teacher scores,
real-label mixing) and bad input (empty corpus, empty texts, corrupt JSONL, a foreign --out folder)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rankstack.errors import InputError
from rankstack.synth.records import SyntheticQuery, write_synthetic_queries
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


def write_collection(folder: Path, empty_texts: int = 0, n_docs: int | None = None) -> Path:
    """Twelve topics x 3 two-sentence documents (no labels needed; a train split for mixing tests)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    filler = ["the", "of", "in", "and", "a", "is", "that", "can"]
    rows = []
    for t, (a, b) in enumerate(TOPICS):
        for j in range(3):
            words = [a, b, a] if j == 2 else [a, "the"] if j == 0 else [b, "of"]
            text = " ".join(words + list(rng.choice(filler, 3))) + ". " + " ".join([b, a] + list(rng.choice(filler, 4)))
            rows.append({"_id": f"t{t}d{j}", "title": "", "text": text + "."})
    for row in rows[:empty_texts]:
        row["text"] = " "
    with open(folder / "corpus.jsonl", "w") as fh:
        for row in rows[: n_docs if n_docs is not None else len(rows)]:
            fh.write(json.dumps(row) + "\n")
    with open(folder / "queries.jsonl", "w") as fh:
        for t, (a, b) in enumerate(TOPICS):
            fh.write(json.dumps({"_id": f"q{t}", "text": f"why do {a} {b}"}) + "\n")
    (folder / "qrels").mkdir(exist_ok=True)
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" +
                                               "".join(f"q{t}\tt{t}d2\t1\n" for t in range(len(TOPICS))))
    return folder


def synthetic(collection: Path, path: Path, ict: bool = False) -> Path:
    """One query per document (its topic words), as 'rankstack generate-queries' would write them."""
    records = []
    for line in (collection / "corpus.jsonl").read_text().splitlines():
        doc = json.loads(line)
        first, _, rest = doc["text"].partition(". ")
        extra = {"doc_text": rest, "span": [0, len(first) + 1]} if ict else {}
        records.append(SyntheticQuery(qid=f"syn-{doc['_id']}", text=first, doc_id=doc["_id"],
                                      generator="ict" if ict else "title", prompt_id="p", seed=0, extra=extra))
    write_synthetic_queries(path, records, append=False, generator=records[0].generator)
    return path


def config(coll: Path, out: Path, tiny_bert: Path, queries: Path, **kw):
    from rankstack.recipes.adapt import AdaptConfig

    base = dict(collection=str(coll), out=out, queries=queries, base_model=str(tiny_bert), heldout=6,
                negatives="bm25", n_negatives=3, negative_depth=10, fn_filter=None, filters="none", epochs=2, batch_size=4,
                grad_accum=1, lr=1e-3, max_length=32, precision="fp32", threads=1, patience=None,
                validate_every=None, time_budget_minutes=None, cache_dir=None)
    base.update(kw)
    return AdaptConfig(**base)


# --------------------------------------------------------------------------------------------
# end to end
def test_adapt_trains_a_cross_encoder_that_rerank_loads_and_reports_next_to_it(tiny_bert, tmp_path):
    from rankstack.recipes import adapt
    from rankstack.rerank.cross_encoder import CrossEncoderReranker
    from rankstack.types import Queries, Run

    coll = write_collection(tmp_path / "c")
    out = tmp_path / "models" / "adapted"
    report = adapt.run(config(coll, out, tiny_bert, synthetic(coll, tmp_path / "q.jsonl")), progress=False)
    assert report.generated == 36 and report.heldout_queries == 6 and report.train_queries == 30
    assert report.groups == 30 and report.steps > 0 and report.real_queries == 0
    assert set(report.heldout) == {"bm25", "adapted"}
    assert 0.0 <= report.heldout["adapted"]["RR@10"] <= 1.0
    saved = json.loads((tmp_path / "models" / "adapted.adapt.json").read_text())
    assert saved["generated"] == 36 and saved["heldout"] == report.heldout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "cross-encoder"
    assert manifest["training"]["adapt"]["labels"]["heldout"] == 6
    model = CrossEncoderReranker(str(out), documents=__import__("rankstack").Collection(str(coll)), precision="fp32")
    run = model(Run.from_dict({"x": {"t0d0": 1.0, "t0d2": 2.0}}, queries=Queries.from_dict({"x": "cats purr"})))
    assert len(run) == 2 and np.all(np.isfinite(run.scores))
    assert "held-back synthetic RR@10" in report.to_text()


def test_adapt_with_the_first_stage_score_in_the_input_records_its_depth(tiny_bert, tmp_path, caplog):
    from rankstack.recipes import adapt
    from rankstack.rerank.cross_encoder import CrossEncoderReranker

    coll = write_collection(tmp_path / "c")
    out = tmp_path / "adapted"
    with caplog.at_level("WARNING", logger="rankstack.recipes.adapt"):
        adapt.run(config(coll, out, tiny_bert, synthetic(coll, tmp_path / "q.jsonl"), first_score_in_input=True,
                         negative_depth=40), progress=False)
    model = CrossEncoderReranker(str(out))
    assert model.first_score_in_input and model.first_score_depth == 40  # BM25's k: max(negative depth, 30)
    # synthetic queries alone: the user is told the score becomes a shortcut (measured on cranfield)
    assert adapt.SYNTHETIC_SCORE_WARNING in caplog.text


def test_adapt_mixes_real_judgements_and_trains_gpl_with_a_teacher(tiny_bert, tmp_path):
    from rankstack.recipes import adapt

    coll = write_collection(tmp_path / "c")
    cfg = config(coll, tmp_path / "m", tiny_bert, synthetic(coll, tmp_path / "q.jsonl"), real_split="train",
                 teacher=str(tiny_bert), gpl_weight=0.5, max_docs=36, cache_dir=tmp_path / "cache")
    report = adapt.run(cfg, progress=False)
    assert report.real_queries == 12 and report.train_queries == 30 and report.gpl
    cached = list((tmp_path / "cache" / "teacher_scores").iterdir())  # the teacher's scores, cached by content
    assert len(cached) == 1
    stamp = (cached[0] / "scores.npy").stat().st_mtime_ns
    import dataclasses

    adapt.run(dataclasses.replace(cfg, overwrite=True), progress=False)  # same pairs: loaded, not re-scored
    assert list((tmp_path / "cache" / "teacher_scores").iterdir()) == cached
    assert (cached[0] / "scores.npy").stat().st_mtime_ns == stamp
    trainer = json.loads((tmp_path / "m" / "manifest.json").read_text())["training"]["trainer"]
    assert "margin_mse" in json.dumps(trainer)
    history = json.loads((tmp_path / "m" / "manifest.json").read_text())["training"]["history"]
    losses = [h["loss"] for h in history if h["event"] == "train"]
    assert losses and all(np.isfinite(losses))


def test_real_heldout_validates_on_judged_queries_kept_out_of_training(tiny_bert, tmp_path):
    from rankstack.data.beir import Collection
    from rankstack.recipes import adapt
    from rankstack.recipes.adapt_data import build_training_data
    from rankstack.synth.records import read_synthetic_queries

    coll = write_collection(tmp_path / "c")
    queries = synthetic(coll, tmp_path / "q.jsonl")
    cfg = config(coll, tmp_path / "m", tiny_bert, queries, real_split="train", real_heldout=4)
    prepared = build_training_data(cfg, Collection(str(coll)), read_synthetic_queries(queries))
    real_val = set(prepared.real_val)
    assert len(real_val) == 4 and all(q.startswith("q") for q in real_val)
    assert set(prepared.data.val_q) == real_val  # the validator sees the judged queries ...
    assert len(prepared.synthetic_val) == 6 and not real_val & set(prepared.synthetic_val)
    assert not real_val & set(prepared.data.train_q)  # ... and training never does
    assert not real_val & {g.qid for g in prepared.data.groups}
    assert prepared.real_queries == 8 and prepared.summary()["real_heldout"] == 4

    report = adapt.run(cfg, progress=False)
    assert report.real_heldout_queries == 4 and report.heldout_queries == 6 and report.real_queries == 8
    assert set(report.heldout_real) == {"bm25", "adapted"} and set(report.heldout) == {"bm25", "adapted"}
    assert "held-back judged nDCG@10" in report.to_text()
    with pytest.raises(InputError, match="only 12 judged"):
        build_training_data(config(coll, tmp_path / "m2", tiny_bert, queries, real_split="train", real_heldout=12),
                            Collection(str(coll)), read_synthetic_queries(queries))


def test_training_data_uses_the_rest_of_the_document_as_the_ict_positive(tiny_bert, tmp_path):
    from rankstack.data.beir import Collection
    from rankstack.recipes.adapt_data import build_training_data
    from rankstack.synth.records import read_synthetic_queries

    coll = write_collection(tmp_path / "c")
    records = read_synthetic_queries(synthetic(coll, tmp_path / "q.jsonl", ict=True))
    collection = Collection(str(coll))
    prepared = build_training_data(config(coll, tmp_path / "m", tiny_bert, None, n_negatives=4), collection, records)
    assert prepared.own_positives == 30
    val = set(prepared.data.val_q)
    for g in prepared.data.groups:
        source = g.qid.removeprefix("syn-")
        assert g.docids[0] == f"{source}#ict:{g.qid}" and g.labels[0] == 1.0
        assert source not in g.docids  # the source document is never a negative
        assert g.qid not in val
        rest = prepared.collection.doc_texts([g.docids[0]])[0]
        assert rest and prepared.labels.queries[g.qid] not in rest
        assert prepared.collection.doc_texts(g.docids[1:]) == collection.doc_texts(g.docids[1:])
    for q in val:  # validation keeps the real document as the positive
        assert prepared.data.qrels.to_dict()[q] == {q.removeprefix("syn-"): 1}


# --------------------------------------------------------------------------------------------
# bad input, and nothing destroyed
def test_a_foreign_out_folder_is_refused_before_any_work(tiny_bert, tmp_path):
    from rankstack.recipes import adapt

    coll = write_collection(tmp_path / "c")
    out = tmp_path / "notes"
    out.mkdir()
    (out / "thesis.txt").write_text("precious")
    with pytest.raises(InputError, match="not a rankstack artefact|refus"):
        adapt.run(config(coll, out, tiny_bert, synthetic(coll, tmp_path / "q.jsonl")), progress=False)
    assert (out / "thesis.txt").read_text() == "precious" and sorted(p.name for p in out.iterdir()) == ["thesis.txt"]


def test_corrupt_synthetic_jsonl_names_the_file_and_line(tiny_bert, tmp_path):
    from rankstack.recipes import adapt

    coll = write_collection(tmp_path / "c")
    path = synthetic(coll, tmp_path / "q.jsonl")
    lines = path.read_text().splitlines()
    lines[3] = lines[3][:-5] + "oops}"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as err:
        adapt.run(config(coll, tmp_path / "m", tiny_bert, path), progress=False)
    assert "q.jsonl" in str(err.value) and ":4" in str(err.value)
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("case", ["empty corpus", "empty texts"])
def test_an_empty_corpus_or_one_without_text_is_one_clear_error(tiny_bert, tmp_path, case):
    from rankstack.recipes import adapt

    coll = write_collection(tmp_path / "c", **({"n_docs": 0} if case == "empty corpus" else {"empty_texts": 36}))
    (tmp_path / "q.jsonl").write_text("")
    with pytest.raises(InputError, match="corpus file is empty|no document|empty title and text") as err:
        adapt.run(config(coll, tmp_path / "m", tiny_bert, tmp_path / "q.jsonl"), progress=False)
    assert "corpus.jsonl" in str(err.value)


def test_queries_from_another_corpus_and_too_few_to_hold_back_are_refused(tiny_bert, tmp_path):
    from rankstack.recipes import adapt

    coll = write_collection(tmp_path / "c")
    path = tmp_path / "q.jsonl"
    write_synthetic_queries(path, [SyntheticQuery("s1", "cats purr", "elsewhere", "title", "p", 0)], append=False)
    with pytest.raises(InputError, match="'elsewhere'.*does not have"):
        adapt.run(config(coll, tmp_path / "m", tiny_bert, path), progress=False)
    write_synthetic_queries(path, [SyntheticQuery("s1", "cats purr", "t0d0", "title", "p", 0)], append=False)
    with pytest.raises(InputError, match="cannot spare 6"):
        adapt.run(config(coll, tmp_path / "m", tiny_bert, path), progress=False)


def test_config_checks_its_options():
    from rankstack.recipes.adapt import AdaptConfig

    for bad, match in [({"filters": "inpars,typo"}, "unknown filter 'typo'"),
                       ({"negatives": "splade"}, "unknown source 'splade'"),
                       ({"gpl_weight": 2.0}, "gpl-weight"), ({"heldout": 0}, "heldout"),
                       ({"loss": "listnett"}, "listnet"), ({"attention_dropout": 2.0}, "attention-dropout"),
                       ({"real_heldout": 5}, "needs --real-split"), ({"real_heldout": -1}, "real-heldout")]:
        with pytest.raises(Exception, match=match):
            AdaptConfig(collection="c", out=Path("m"), **bad)


def test_training_speed_options_reach_the_reranker_recipe():
    from rankstack.recipes.adapt import AdaptConfig, _reranker_config

    default = _reranker_config(AdaptConfig(collection="c", out=Path("m")))
    assert default.fused_optimizer is True and default.attention_dropout is None
    fast = _reranker_config(AdaptConfig(collection="c", out=Path("m"), fused_optimizer=False, attention_dropout=0.0))
    assert fast.fused_optimizer is False and fast.attention_dropout == 0.0
    assert default.first_score_in_input is False
    assert _reranker_config(AdaptConfig(collection="c", out=Path("m"), first_score_in_input=True)).first_score_in_input


# --------------------------------------------------------------------------------------------
# generation inside adapt (part 1's recipe), resumed from the work folder, and the filters
def test_adapt_generates_with_the_fake_lm_filters_and_resumes_without_new_calls(tiny_bert, tmp_path):
    from rankstack.llm.fake import FakeLM
    from rankstack.recipes import adapt

    coll = write_collection(tmp_path / "c")
    vocab = {w for pair in TOPICS for w in pair}

    def respond(prompt: str) -> str:
        found = [w.strip(".,") for w in prompt.split() if w.strip(".,") in vocab]
        return "what about " + " ".join(dict.fromkeys(found[-3:]))

    fake = FakeLM(respond=respond)
    cfg = config(coll, tmp_path / "m", tiny_bert, None, generator="llm-instruct", max_docs=30,
                 filters="inpars,roundtrip", keep_fraction=0.8, roundtrip_k=5, heldout=4, work_dir=tmp_path / "work")
    report = adapt.run(cfg, progress=False, backend=fake)
    assert report.generated == 30 and list(report.kept_by_filter) == ["inpars", "roundtrip"]
    assert report.kept_by_filter["inpars"] == 24 and report.kept_by_filter["roundtrip"] <= 24
    assert report.train_queries + report.heldout_queries == report.kept_by_filter["roundtrip"]
    assert report.generation["generation"]["written"] == 30
    calls = sum(fake.calls.values())
    again = adapt.run(dataclasses_replace(cfg, overwrite=True), progress=False, backend=fake)
    assert sum(fake.calls.values()) == calls  # the work folder's queries were reused, not regenerated
    assert again.generated == 30 and again.generation["generation"]["already_done"] == 30


def dataclasses_replace(cfg, **kw):
    import dataclasses

    return dataclasses.replace(cfg, **kw)


def test_adapt_default_work_folder_is_keyed_by_the_generation_settings(tmp_path):
    from rankstack.data.beir import Collection
    from rankstack.recipes.adapt import AdaptConfig
    from rankstack.recipes.adapt_generate import work_folder

    coll = write_collection(tmp_path / "c")
    a = AdaptConfig(collection=str(coll), out=tmp_path / "m", cache_dir=tmp_path / "cache")
    folder = work_folder(a, Collection(str(coll)))
    assert folder.parent == tmp_path / "cache" / "adapt"
    assert work_folder(dataclasses_replace(a, time_budget_minutes=3.0), Collection(str(coll))) == folder
    assert work_folder(dataclasses_replace(a, generator="title"), Collection(str(coll))) != folder


def test_report_warns_when_the_model_has_not_learned_to_rank():
    from rankstack.recipes.adapt import AdaptReport

    def report(adapted: float, base_model: str = "minilm") -> AdaptReport:
        return AdaptReport(base_model=base_model, model_dir="m", collection="c", generator="ict", selection="uniform",
                           documents=10,
                           empty_documents=0, generated=10, kept_by_filter={}, dropped={}, train_queries=8,
                           real_queries=0, heldout_queries=2, groups=8, steps=3, fn_filter=None, gpl=False,
                           generation_seconds=1.0, mining_seconds=1.0, training_seconds=1.0, total_seconds=3.0,
                           heldout={"bm25": {"RR@10": 1.0}, "adapted": {"RR@10": adapted}},
                           stopped_by_budget=False, queries_file="q.jsonl")

    weak, fine = report(0.23), report(0.75)
    assert weak.warning is not None and "has not learned to rank" in weak.warning and "--base-model" in weak.warning
    assert weak.to_text().splitlines()[-1].startswith("warning: ") and weak.to_dict()["warning"] == weak.warning
    assert fine.warning is None and "warning" not in fine.to_text() and fine.to_dict()["warning"] is None
    started = report(0.23, base_model="models/student")  # already from a trained model: not told to start from one
    assert started.warning is not None and "--base-model" not in started.warning and "Train on LLM" in started.warning
