"""synth.training: labels from synthetic queries (the source is the positive), hard negatives from several
first stages that never include the source document, mixing with real labels, and teacher pseudo-labels."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.errors import InputError
from rankstack.synth.records import SyntheticQuery
from rankstack.synth.training import labels_from_synthetic, merge_labels, mine_negatives, teacher_run
from rankstack.types import Qrels, Queries, Run

DOCS = [f"d{i}" for i in range(20)]


def rec(qid: str, text: str, doc: str, gen: str = "ict") -> SyntheticQuery:
    return SyntheticQuery(qid=qid, text=text, doc_id=doc, generator=gen, prompt_id=f"{gen}-p", seed=0)


def run_of(rows: dict[str, list[str]], name: str) -> Run:
    return Run.from_dict({q: {d: float(len(ds) - i) for i, d in enumerate(ds)} for q, ds in rows.items()}, name=name)


def test_labels_make_the_source_document_the_only_positive():
    labels = labels_from_synthetic([rec("s1", "why cats purr", "d1"), rec("s2", "dogs bark", "d2", "title")], DOCS)
    assert labels.queries.to_dict() == {"s1": "why cats purr", "s2": "dogs bark"}
    assert labels.qrels.to_dict() == {"s1": {"d1": 1}, "s2": {"d2": 1}}
    assert labels.generators == {"ict": 1, "title": 1}
    assert labels.dropped == {}


def test_labels_drop_and_count_blank_and_repeated_pairs():
    records = [rec("s1", "Why cats  purr", "d1"), rec("s2", "why cats purr", "d1"), rec("s3", "   ", "d2"),
               rec("s4", "why cats purr", "d3")]  # same text, other document: kept
    labels = labels_from_synthetic(records, DOCS)
    assert list(labels.queries.qids) == ["s1", "s4"]
    assert labels.dropped == {"duplicate": 1, "empty text": 1}


def test_labels_refuse_a_document_the_collection_lacks_and_an_empty_set(tmp_path):
    with pytest.raises(InputError, match="'nope'.*does not have") as err:
        labels_from_synthetic([rec("s1", "q", "nope")], DOCS, source=tmp_path / "q.jsonl")
    assert "q.jsonl" in str(err.value)
    with pytest.raises(InputError, match="no synthetic queries"):
        labels_from_synthetic([], DOCS)
    with pytest.raises(InputError, match="none of the 1 synthetic queries"):
        labels_from_synthetic([rec("s1", " ", "d1")], DOCS)


def test_negatives_come_from_both_sources_exclude_the_source_and_are_seeded():
    queries = Queries.from_dict({"s1": "a", "s2": "b"})
    qrels = Qrels.from_dict({"s1": {"d0": 1}, "s2": {"d5": 1}})
    bm25 = run_of({"s1": ["d0", "d1", "d2", "d3", "d4"], "s2": ["d5", "d6", "d7", "d8", "d9"]}, "bm25")
    dense = run_of({"s1": ["d10", "d0", "d11", "d12", "d13"], "s2": ["d14", "d15", "d5", "d16", "d17"]}, "dense")
    negs = mine_negatives(queries, qrels, {"bm25": bm25, "dense": dense}, 4, depth=5, all_docids=DOCS, seed=3)
    for qid, pos in (("s1", "d0"), ("s2", "d5")):
        assert len(negs[qid]) == 4 and len(set(negs[qid])) == 4
        assert pos not in negs[qid]
        from_bm25 = set(negs[qid]) & set(bm25.for_query(qid)[0].tolist())
        from_dense = set(negs[qid]) & set(dense.for_query(qid)[0].tolist())
        assert len(from_bm25) == 2 and len(from_dense) == 2  # equal shares, interleaved
    assert negs == mine_negatives(queries, qrels, {"bm25": bm25, "dense": dense}, 4, depth=5, all_docids=DOCS, seed=3)


def test_a_short_source_is_topped_up_by_the_other_then_at_random():
    queries = Queries.from_dict({"s1": "a"})
    qrels = Qrels.from_dict({"s1": {"d0": 1}})
    bm25 = run_of({"s1": ["d0", "d1"]}, "bm25")  # one candidate besides the source
    dense = run_of({"s1": ["d2", "d3", "d4", "d5"]}, "dense")
    negs = mine_negatives(queries, qrels, {"bm25": bm25, "dense": dense}, 4, depth=5, seed=0)["s1"]
    assert "d1" in negs and set(negs) - {"d1"} <= {"d2", "d3", "d4", "d5"} and len(negs) == 4
    negs = mine_negatives(queries, qrels, {"bm25": bm25}, 5, depth=5, all_docids=DOCS, seed=0)["s1"]
    assert negs[0] == "d1" and len(negs) == 5 and "d0" not in negs
    with pytest.raises(InputError, match="at least one first-stage run"):
        mine_negatives(queries, qrels, {}, 3)


def test_merge_keeps_both_label_sets_and_refuses_a_shared_query_id():
    syn = (Queries.from_dict({"s1": "a"}), Qrels.from_dict({"s1": {"d1": 1}}))
    real = (Queries.from_dict({"7": "b"}), Qrels.from_dict({"7": {"d2": 2, "d3": 0}, "8": {"d4": 1}}))
    queries, qrels = merge_labels([syn, real])
    assert queries.to_dict() == {"s1": "a", "7": "b"}
    assert qrels.to_dict() == {"s1": {"d1": 1}, "7": {"d2": 2, "d3": 0}}  # qrels of absent queries dropped
    with pytest.raises(InputError, match="'s1' is both"):
        merge_labels([syn, (Queries.from_dict({"s1": "c"}), Qrels.from_dict({"s1": {"d9": 1}}))])


def test_teacher_run_scores_every_candidate_once_and_refuses_nan():
    queries = Queries.from_dict({"s1": "cats", "s2": "dogs"})
    seen = []

    def score(q_texts, d_texts):
        seen.extend(zip(q_texts, d_texts))
        return np.array([len(q) + len(d) for q, d in zip(q_texts, d_texts)], dtype=float)

    run = teacher_run(score, queries, {"s1": ["d1", "d22", "d1"], "s2": ["d3"]}, lambda ids: [f"text {d}" for d in ids])
    assert sorted(seen) == [("cats", "text d1"), ("cats", "text d22"), ("dogs", "text d3")]
    assert run.to_dict() == {"s1": {"d22": 12.0, "d1": 11.0}, "s2": {"d3": 11.0}}
    with pytest.raises(InputError, match="non-finite"):
        teacher_run(lambda q, d: np.full(len(q), np.nan), queries, {"s1": ["d1"]}, lambda ids: list(ids))
