"""Query generators: title, inverse cloze, salient terms, and the LLM ones through the scripted fake LM."""

from __future__ import annotations

import re

import numpy as np
import pytest

from rankstack.data.beir import Document
from rankstack.errors import InputError
from rankstack.llm.fake import FakeLM
from rankstack.synth.generators import build_generator, sentence_spans
from rankstack.synth.llm_generators import INPARS_PROMPT

DOCS = [
    Document("d1", "Cats and purring", "Cats purr when content. Purring is a low vibration of the larynx muscles. "
             "Lions cannot purr but they can roar loudly."),
    Document("d2", "", "Dogs bark at strangers and at the postman every single morning of the week."),
    Document("d3", "Fish", "goldfish swim in round bowls of water . they need clean water every week to stay well ."),
]


def test_title_generator_and_missing_title():
    out = build_generator("title").generate(DOCS)
    assert [g.text for g in out] == ["Cats and purring", None, "Fish"]
    assert out[1].rejected == "no title"


def test_sentence_spans_handle_plain_and_tokenised_text():
    t = DOCS[0].text
    assert [t[a:b] for a, b in sentence_spans(t)] == ["Cats purr when content.",
                                                       "Purring is a low vibration of the larynx muscles.",
                                                       "Lions cannot purr but they can roar loudly."]
    t = DOCS[2].text
    assert len(sentence_spans(t)) == 2
    assert len(sentence_spans("e.g. this is one sentence, i.e. not two.")) == 1


def test_ict_removes_the_query_sentence_and_is_seeded():
    gen = build_generator("ict")
    picks = set()
    for seed in range(12):
        out = gen.generate(DOCS, seed=seed)
        g = out[0]
        a, b = g.extra["span"]
        assert DOCS[0].text[a:b] == g.text and g.text not in g.extra["doc_text"]
        assert len(g.extra["doc_text"]) < len(DOCS[0].text)
        assert out[1].rejected == "too few sentences"  # one sentence only
        assert gen.generate(DOCS, seed=seed)[0].text == g.text  # same seed, same sentence
        picks.add(g.text)
    assert len(picks) == 2  # "Cats purr when content." has 4 words < min_words 5: never drawn


def test_salient_terms_are_top_tfidf_words():
    gen = build_generator("salient", n_terms=3)
    with pytest.raises(InputError, match="fit"):
        gen.generate(DOCS)
    gen.fit(DOCS)
    out = gen.generate(DOCS)
    for g, d in zip(out, DOCS):
        terms = g.text.split()
        assert len(terms) == 3 and all(t in d.contents.lower() for t in terms)
        assert not {"and", "the", "of", "at"} & set(terms)
        assert g.extra["weights"] == sorted(g.extra["weights"], reverse=True)
    assert "purr" in out[0].text or "purring" in out[0].text


def scripted(answer):
    """A fake LM answering ``answer(passage)`` for a prompt holding ``Text: <passage>``."""
    def respond(prompt: str) -> str:
        m = re.search(r"Text: (.*)\nassistant: $", prompt, re.S)
        return answer(m.group(1) if m else prompt)
    return FakeLM(respond=respond)


def test_llm_instruct_cleans_scores_and_rejects():
    answers = {"d1": "Query: why do cats purr", "d2": "", "d3": None}

    def answer(passage: str) -> str:
        if passage.startswith("Cats"):
            return answers["d1"]
        if passage.startswith("Dogs"):
            return answers["d2"]
        return passage  # copies the passage
    lm = scripted(answer)
    gen = build_generator("llm-instruct", backend=lm, prompt="question")
    out = gen.generate(DOCS, seed=3)
    assert out[0].text == "why do cats purr" and out[0].score == pytest.approx(-0.1)
    assert out[1].rejected == "empty" and out[2].rejected == "copy of the passage"
    assert lm.calls["generate"] == 1  # one batched call
    assert gen.prompt_id.startswith("llm-instruct-question-")
    other = build_generator("llm-instruct", backend=lm, prompt="query")
    assert other.prompt_id != gen.prompt_id
    desc = gen.describe()
    assert desc["model"] == "fake" and desc["prompt"] == "question" and len(desc["template_sha256"]) == 8
    with pytest.raises(InputError, match="neither a variant"):
        build_generator("llm-instruct", backend=lm, prompt="nonsense")


def test_llm_passages_are_truncated_in_the_prompt():
    seen = []
    lm = FakeLM(respond=lambda p: seen.append(p) or "what is this about")
    build_generator("llm-instruct", backend=lm, max_doc_tokens=8).generate(DOCS[:1])
    assert "Text: Cats and purring Cats purr when content.\nassistant" in seen[0] and "larynx" not in seen[0]
    assert seen[0].startswith("user: Generate a question")


def test_inpars_few_shot_prompt_stops_at_newline():
    prompts = []
    lm = FakeLM(respond=lambda p: prompts.append(p) or " how do fish live\nExample 5:\nDocument: x")
    gen = build_generator("inpars", backend=lm)
    out = gen.generate(DOCS[2:])
    assert out[0].text == "how do fish live"
    assert prompts[0].endswith("Relevant Query:") and prompts[0].startswith(INPARS_PROMPT[:40])
    assert "Document: Fish goldfish swim" in prompts[0]
    # the score is the mean over the query's own tokens, not the run-on text
    assert out[0].score == pytest.approx(-0.1)
    assert gen.prompt_id.startswith("inpars-")


def test_scores_follow_token_logprobs():
    class Graded(FakeLM):
        def _generate(self, prompts, max_new_tokens, temperature, seed, stop):
            out = super()._generate(prompts, max_new_tokens, temperature, seed, stop)
            from dataclasses import replace
            return [replace(g, token_logprobs=tuple(-float(i + 1) for _ in g.token_logprobs))
                    for i, g in enumerate(out)]
    lm = Graded(respond=lambda p: "some sensible query words")
    out = build_generator("llm-instruct", backend=lm).generate(DOCS)
    assert [g.score for g in out] == [-1.0, -2.0, -3.0]
    assert np.isfinite([g.score for g in out]).all()


def test_unknown_generator_suggests():
    with pytest.raises(InputError, match="did you mean 'title'"):
        build_generator("titel")
    with pytest.raises(InputError, match="must be an LLMBackend"):
        build_generator("llm-instruct", backend="smollm2")


def test_default_prompt_prefills_the_reply_and_variants_have_distinct_ids():
    seen = []
    lm = FakeLM(respond=lambda p: seen.append(p) or ' "What makes cats purr?" said the model')
    gen = build_generator("llm-instruct", backend=lm)
    out = gen.generate(DOCS[:1])
    assert seen[0].endswith("assistant: Question:") and out[0].text == "What makes cats purr?"
    from rankstack.synth.llm_generators import INSTRUCT_PROMPTS

    ids = {build_generator("llm-instruct", backend=lm, prompt=v).prompt_id for v in INSTRUCT_PROMPTS}
    assert len(ids) == len(INSTRUCT_PROMPTS)
