"""Negatives (random / run-based), the false-negative filter and curriculum weights."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rankstack.errors import InputError
from rankstack.train.curriculum import Curriculum, group_easiness, item_easiness
from rankstack.train.negatives import FalseNegativeFilter, positives_of, sample_negatives
from rankstack.recipes.reranker_data import Group, attach_easiness, build_groups, split_queries
from rankstack.types import Qrels, Queries, Run

QUERIES = Queries(("q1", "q2"), ("cats purr", "dogs bark"))
QRELS = Qrels.from_dict({"q1": {"d1": 1, "d9": 0}, "q2": {"d2": 2, "d3": 1}})
DOCIDS = [f"d{i}" for i in range(1, 31)]
RUN = Run.from_dict({"q1": {f"d{i}": 30.0 - i for i in range(1, 21)},
                     "q2": {f"d{i}": 10.0 - i / 10 for i in range(2, 12)}}, queries=QUERIES)


def test_positives_of_keeps_relevant_only():
    assert positives_of(QRELS) == {"q1": {"d1": 1}, "q2": {"d2": 2, "d3": 1}}
    assert positives_of(QRELS, min_relevance=2) == {"q2": {"d2": 2}}


def test_run_negatives_exclude_judged_and_respect_depth():
    negs = sample_negatives(QUERIES, QRELS, 4, "bm25", run=RUN, all_docids=DOCIDS, depth=8, seed=1)
    top8 = {q: set(d[:8].tolist()) for q, d, _ in RUN.groups()}
    for q, ds in negs.items():
        assert len(ds) == 4 and len(set(ds)) == 4
        assert not set(ds) & set(QRELS.to_dict()[q])
        assert set(ds) <= top8[q]
    again = sample_negatives(QUERIES, QRELS, 4, "bm25", run=RUN, all_docids=DOCIDS, depth=8, seed=1)
    assert again == negs  # seeded


def test_short_run_is_topped_up_with_random_documents():
    short = RUN.top_k(3)
    negs = sample_negatives(QUERIES, QRELS, 5, "bm25", run=short, all_docids=DOCIDS, depth=30, seed=0)
    assert all(len(v) == 5 for v in negs.values())


def test_random_negatives_need_docids_and_valid_n():
    negs = sample_negatives(QUERIES, QRELS, 3, "random", all_docids=DOCIDS, seed=0)
    assert all(len(v) == 3 for v in negs.values()) and not {"d1", "d9"} & set(negs["q1"])
    with pytest.raises(InputError):
        sample_negatives(QUERIES, QRELS, 3, "random")
    with pytest.raises(InputError):
        sample_negatives(QUERIES, QRELS, -1, "random", all_docids=DOCIDS)
    with pytest.raises(InputError):
        sample_negatives(QUERIES, QRELS, 3, "bm25")  # no run
    with pytest.raises(InputError):
        sample_negatives(QUERIES, QRELS, 3, "colbert", all_docids=DOCIDS)


def test_groups_binary_and_graded():
    negs = {"q1": ["d4", "d5"], "q2": ["d6"]}
    groups = build_groups(QUERIES, QRELS, negs, first_stage=RUN)
    assert [(g.qid, g.docids, g.labels) for g in groups] == [
        ("q1", ["d1", "d4", "d5"], [1.0, 0.0, 0.0]),
        ("q2", ["d2", "d6"], [1.0, 0.0]),
        ("q2", ["d3", "d6"], [1.0, 0.0])]
    assert groups[0].first_ranks == [1, 4, 5]
    graded = build_groups(QUERIES, QRELS, negs, graded=True)
    assert graded[1].docids == ["d2", "d3", "d6"] and graded[1].labels == [2.0, 1.0, 0.0]
    assert graded[0].labels == [1.0, 0.0, 0.0, 0.0]  # d9 judged 0 kept as a negative


def test_split_queries_is_seeded_and_disjoint():
    qids = [f"q{i}" for i in range(20)]
    train, val = split_queries(qids, 5, seed=3)
    assert len(val) == 5 and not set(train) & set(val) and len(train) == 15
    assert split_queries(qids, 5, seed=3) == (train, val)
    with pytest.raises(InputError):
        split_queries(qids, 20)


def _texts(ids):
    return [f"text of {d}" for d in ids]


def test_false_negative_filter_drop_and_downweight_counts():
    groups = [Group("q1", "cats", ["p", "a", "b", "c"], [1.0, 0, 0, 0], [1.0] * 4, [1, 2, 3, 4], [1, .5, .2, 0]),
              Group("q2", "dogs", ["p2", "x", "y"], [1.0, 0, 0], [1.0] * 3, [3, 1, 2], [0, 1, .5])]
    teacher_scores = {"p": 0.5, "a": 0.9, "b": 0.1, "c": 0.6, "p2": 0.8, "x": 0.2, "y": 0.3}

    def teacher(qs, ds):
        return np.array([teacher_scores[d.removeprefix("text of ")] for d in ds])

    kept, report = FalseNegativeFilter(teacher, mode="drop").apply(groups, _texts)
    assert kept[0].docids == ["p", "b"] and kept[0].first_ranks == [1, 3]
    assert kept[1].docids == ["p2", "x", "y"]
    assert (report.candidates, report.flagged, report.dropped, report.groups_affected) == (5, 2, 2, 1)
    assert set(report.flagged_pairs) == {("q1", "a"), ("q1", "c")}
    assert groups[0].docids == ["p", "a", "b", "c"]  # inputs untouched

    weighted, report = FalseNegativeFilter(teacher, mode="downweight", weight=0.25).apply(groups, _texts)
    assert weighted[0].weights == [1.0, 0.25, 1.0, 0.25] and report.downweighted == 2
    _, strict = FalseNegativeFilter(teacher, margin=0.2).apply(groups, _texts)
    assert strict.flagged == 1  # only a (0.9 > 0.5 + 0.2)
    with pytest.raises(InputError):
        FalseNegativeFilter(teacher, mode="relabel")


def test_curriculum_easiness_and_annealing_to_one():
    # a relevant doc at rank 1 is easy, unretrieved relevant is hard; negatives the other way round
    e = item_easiness([1, 1, 0, 0], [1, 0, 1, 0])
    assert e.tolist() == [1.0, 0.0, 0.0, 1.0]
    assert group_easiness([1, 0], [2, 4]) == pytest.approx((0.5 + 0.75) / 2)
    cur = Curriculum(fraction=0.5)
    ease = np.array([0.0, 0.3, 1.0])
    w0 = cur.weights(ease, 0, 100)
    assert w0.tolist() == pytest.approx(ease.tolist())
    mid = cur.weights(ease, 25, 100)
    assert np.all(mid >= w0) and np.all(mid <= 1)
    assert cur.weights(ease, 50, 100).tolist() == [1.0, 1.0, 1.0]
    assert cur.weights(ease, 99, 100).tolist() == [1.0, 1.0, 1.0]
    steps = [cur.weights(ease, t, 100)[0] for t in range(0, 60, 5)]
    assert steps == sorted(steps)  # monotone annealing
    assert Curriculum(floor=0.2).weights([0.0], 0, 10)[0] == pytest.approx(0.2)
    with pytest.raises(InputError):
        Curriculum(fraction=0)
    with pytest.raises(InputError):
        item_easiness([1], [1], heuristic="bm25")


def test_attach_easiness_uses_first_stage_ranks():
    groups = build_groups(QUERIES, QRELS, {"q1": ["d2", "d20"], "q2": ["d11"]}, first_stage=RUN)
    eased = attach_easiness(groups)
    assert all(0.0 <= g.easiness <= 1.0 for g in eased)
    assert eased[0].easiness == pytest.approx(group_easiness([1, 0, 0], [1, 2, 20]))


def test_first_stage_depth_above_1000_is_not_capped(tmp_path):
    """Mining deeper than BM25's own default depth (1000) returns that many documents (the cut-off
    is pushed down to the retriever), not a silent 1000."""
    from rankstack.data.beir import Collection
    from rankstack.train.negatives import first_stage_run

    folder = tmp_path / "deep"
    (folder / "qrels").mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w") as fh:
        for i in range(1300):
            fh.write(json.dumps({"_id": f"d{i}", "title": "", "text": "cat " + "word " * (i % 7) + f"w{i}"}) + "\n")
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "cat"}) + "\n")
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    coll = Collection(folder)
    queries = coll.queries("train")
    run = first_stage_run(coll, queries, "bm25", k=1200, cache_dir=None)
    assert len(run.restrict(["q1"])) == 1200
    negs = sample_negatives(queries, coll.qrels("train"), 5, "bm25", run=run, depth=1200, seed=0)
    ranks = {d: r for r, d in enumerate(next(iter(run.groups()))[1].tolist())}
    assert len(negs["q1"]) == 5 and all(d in ranks for d in negs["q1"])


def test_dense_teacher_reuses_cached_corpus_vectors_across_runs(tiny_collection, tmp_path):
    """The false-negative filter's dense teacher encodes the corpus once per model fingerprint: a second
    run (a new teacher object, as in a new process) encodes only the queries; other weights re-encode."""
    from rankstack.data.beir import Collection
    from rankstack.encode.base import Encoder
    from rankstack.train.negatives import DenseTeacher

    class Counting(Encoder):
        backend, dim = "fake", 4

        def __init__(self, digest: str) -> None:
            super().__init__(batch_size=8)
            self.encoder_id, self.texts = f"fake:{digest}", 0

        def _encode_batch(self, texts):
            self.texts += len(texts)
            return np.array([[len(t), t.count("a"), t.count("e"), 1.0] for t in texts], dtype=np.float32)

    coll = Collection(tiny_collection)
    docids = list(coll.documents())[:3]
    n_docs = len(coll.documents())
    runs = []
    for digest in ("w1", "w1", "w2"):
        enc = Counting(digest)
        teacher = DenseTeacher(enc, collection=coll, cache_dir=tmp_path)
        scores = teacher.score(["a query"] * 3, coll.doc_texts(docids))
        runs.append((enc.texts, scores))
    assert runs[0][0] == n_docs + 1  # corpus + the one distinct query
    assert runs[1][0] == 1  # same fingerprint: only the query
    assert runs[2][0] == n_docs + 1  # other weights: the corpus again
    np.testing.assert_allclose(runs[0][1], runs[1][1])
