"""The generate-queries recipe: provenance, empty documents, resume after a kill, time budget, DUQGen."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from rankstack.errors import InputError
from rankstack.llm.fake import FakeLM
from rankstack.recipes.generate import GenerateConfig, run
from rankstack.synth.records import read_synthetic_header, read_synthetic_queries
from tests.fixtures.beir import TINY_DOCS, write_beir

DOCS = TINY_DOCS + [(f"x{i}", f"Topic {i}", f"Document number {i} talks about subject {i}. It has two sentences.")
                    for i in range(10)]


@pytest.fixture
def coll(tmp_path):
    return write_beir(tmp_path / "coll", docs=DOCS + [("empty", "", "  ")])


def cfg(coll, out, **kw):
    return GenerateConfig(collection=str(coll), out=out, **{"generator": "title", "max_docs": 100, **kw})


def fake(fail_after: int | None = None) -> FakeLM:
    """Answers 'about <first word of the passage> things'; raises on call ``fail_after`` + 1 (a kill)."""
    calls = []

    def respond(prompt: str) -> str:
        calls.append(prompt)
        word = prompt.split("Text: ", 1)[1].split()[0]
        return f"what about {word.lower()} things"
    lm = FakeLM(respond=respond)
    if fail_after is not None:
        original = lm._generate

        def dying(*args, **kwargs):
            if lm.calls["generate"] >= fail_after:
                raise KeyboardInterrupt("killed")
            return original(*args, **kwargs)
        lm._generate = dying
    return lm


def test_title_queries_with_provenance_and_skipped_empty_document(coll, tmp_path, caplog):
    out = tmp_path / "q.jsonl"
    with caplog.at_level(logging.WARNING):
        res = run(cfg(coll, out), progress=False)
    assert "1 of 17 documents have empty text" in caplog.text
    recs = read_synthetic_queries(out)
    assert res.written == len(recs) == 16 and res.empty_documents == 1 and res.rejected == {}
    assert {r.doc_id for r in recs} == {d for d, _, _ in DOCS}
    r = next(r for r in recs if r.doc_id == "d1")
    assert (r.text, r.generator, r.seed, r.score) == ("Cats", "title", 0, None)
    assert r.prompt_id.startswith("title-") and r.qid == f"syn-{r.prompt_id}-s0-d1"
    header = read_synthetic_header(out)
    assert header["generator"] == "title" and header["config"]["identity"]["selection"] == "uniform"
    report = json.loads((tmp_path / "q.jsonl.report.json").read_text())
    assert report["written"] == 16 and report["remaining"] == 0
    with pytest.raises(InputError, match="already exists.*--resume"):
        run(cfg(coll, out), progress=False)


def test_resume_after_a_kill_gives_exactly_the_union(coll, tmp_path):
    full = tmp_path / "full.jsonl"
    run(cfg(coll, full, generator="llm-instruct", batch_size=3), progress=False, backend=fake())
    out = tmp_path / "q.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run(cfg(coll, out, generator="llm-instruct", batch_size=3), progress=False, backend=fake(fail_after=2))
    partial = read_synthetic_queries(out)
    assert len(partial) == 6  # two batches of three were written before the kill
    with open(out, "a") as fh:  # the kill also tore the line being written
        fh.write('{"qid": "syn-half", "text": "wha')
    lm = fake()
    res = run(cfg(coll, out, generator="llm-instruct", batch_size=3, resume=True), progress=False, backend=lm)
    assert res.already_done == 6 and res.written == 10
    got, want = read_synthetic_queries(out), read_synthetic_queries(full)
    assert len({r.key for r in got}) == len(got) == 16
    assert sorted((r.qid, r.text, r.score) for r in got) == sorted((r.qid, r.text, r.score) for r in want)
    assert lm.calls["generate"] == 4  # ceil(10 / 3) batches: no item was generated twice
    again = run(cfg(coll, out, generator="llm-instruct", batch_size=3, resume=True), progress=False, backend=fake())
    assert again.written == 0 and again.already_done == 16


def test_resume_refuses_other_settings(coll, tmp_path):
    out = tmp_path / "q.jsonl"
    run(cfg(coll, out, generator="llm-instruct", max_docs=2), progress=False, backend=fake())
    with pytest.raises(InputError, match="prompt_id="):
        run(cfg(coll, out, generator="llm-instruct", prompt="query", resume=True), progress=False, backend=fake())
    with pytest.raises(InputError, match="seed=0"):
        run(cfg(coll, out, generator="llm-instruct", seed=1, resume=True), progress=False, backend=fake())
    with pytest.raises(InputError, match="generator='llm-instruct'"):
        run(cfg(coll, out, generator="ict", resume=True), progress=False)
    # another model (the loaded backend's name is recorded, not the --model spelling)
    other = fake()
    other.name = "other-model"
    with pytest.raises(InputError, match=r"model='fake', this run has 'other-model'.*same settings"):
        run(cfg(coll, out, generator="llm-instruct", max_docs=2, resume=True), progress=False, backend=other)
    # a file written before the fix (its identity held the --model spelling, here None): the generator's
    # provenance names the model, and that is what is compared
    header_line, *rest = out.read_text().splitlines(keepends=True)
    header = json.loads(header_line)
    header["config"]["identity"]["model"] = None
    out.write_text(json.dumps(header) + "\n" + "".join(rest))
    with pytest.raises(InputError, match=r"model='fake', this run has 'other-model'"):
        run(cfg(coll, out, generator="llm-instruct", max_docs=2, resume=True), progress=False, backend=other)
    run(cfg(coll, out, generator="llm-instruct", max_docs=2, resume=True), progress=False, backend=fake())
    # the same model at the other precision (a bf16 CPU resuming an fp32 file): the fix names --precision
    bf16 = fake()
    bf16.name = bf16.name + "+bf16"
    with pytest.raises(InputError, match=r"model=.*\+bf16.*fix: resume with --precision fp32"):
        run(cfg(coll, out, generator="llm-instruct", max_docs=2, resume=True), progress=False, backend=bf16)


def test_time_budget_stops_between_batches_and_resume_finishes(coll, tmp_path):
    out = tmp_path / "q.jsonl"
    res = run(cfg(coll, out, generator="llm-instruct", batch_size=4, time_budget=1e-9), progress=False,
              backend=fake())
    assert res.stopped_by_budget and res.written == 4 and "run again with --resume" in res.to_text()
    res = run(cfg(coll, out, generator="llm-instruct", batch_size=4, resume=True), progress=False, backend=fake())
    assert not res.stopped_by_budget and res.written == 12 and len(read_synthetic_queries(out)) == 16


def test_garbage_answers_are_rejected_and_counted(coll, tmp_path):
    answers = iter(["", "%%%% 1234 5678 !!", "Query: what about cats"] * 10)
    lm = FakeLM(respond=lambda prompt: next(answers))
    res = run(cfg(coll, tmp_path / "q.jsonl", generator="llm-instruct", max_docs=6), progress=False, backend=lm)
    assert res.rejected == {"empty": 2, "mostly non-letters": 2} and res.written == 2
    assert "rejected: empty 2, mostly non-letters 2" in res.to_text()
    assert res.rejected_examples["mostly non-letters"][0].endswith(": %%%% 1234 5678 !!")


def test_duqgen_selection_reports_coverage(coll, tmp_path):
    pytest.importorskip("faiss")

    def embed(texts, ids):  # two topics: the tiny animal documents and the numbered ones
        return np.array([[1.0, 0.1 * (i % 3)] if not d.startswith("x") else [0.1 * (i % 3), 1.0]
                         for i, d in enumerate(ids)], dtype=np.float32)
    res = run(cfg(coll, tmp_path / "q.jsonl", selection="duqgen", clusters=2, max_docs=6), progress=False,
              embed=embed)
    rep = res.selection_report
    assert rep["clusters"] == 2 and rep["clusters_hit"] == 2 and rep["eligible"] == 16 and res.selected == 6
    assert "coverage: 2/2 clusters" in res.to_text()


def test_ict_multiple_queries_per_document_and_bad_settings(coll, tmp_path):
    res = run(cfg(coll, tmp_path / "q.jsonl", generator="ict", queries_per_doc=2, max_docs=16), progress=False)
    recs = read_synthetic_queries(tmp_path / "q.jsonl")
    assert {r.seed for r in recs} == {0, 1} and len({r.key for r in recs}) == len(recs) == res.written
    with pytest.raises(InputError, match="repeat the same query"):
        cfg(coll, tmp_path / "x.jsonl", queries_per_doc=2)
    with pytest.raises(InputError, match="LLM generators only"):
        cfg(coll, tmp_path / "x.jsonl", model="smollm2")


def test_empty_corpus_and_all_empty_documents(tmp_path):
    empty = write_beir(tmp_path / "empty", docs=[])
    with pytest.raises(InputError, match="corpus file is empty"):
        run(cfg(empty, tmp_path / "q.jsonl"), progress=False)
    blank = write_beir(tmp_path / "blank", docs=[("a", "", ""), ("b", " ", "\t")])
    with pytest.raises(InputError, match="none of the 2 documents has text"):
        run(cfg(blank, tmp_path / "q.jsonl"), progress=False)
    assert not (tmp_path / "q.jsonl").exists()


def test_cli_verb(coll, tmp_path, capsys):
    from rankstack.cli import main

    out = tmp_path / "cli.jsonl"
    assert main(["generate-queries", "--collection", str(coll), "--generator", "salient", "--max-docs", "5",
                 "--out", str(out)]) == 0
    assert "5 queries written" in capsys.readouterr().out and len(read_synthetic_queries(out)) == 5
    assert main(["generate-queries", "--collection", str(coll), "--generator", "salient", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--resume" in err
