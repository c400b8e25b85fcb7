"""A tiny BEIR collection and an experiment folder over it (BM25 runs only) for the workbench tests.

Two BM25 settings disagree on some queries (length normalisation matters for the long documents), so
the per-query deltas are positive, negative and zero; one document holds markup that must stay text.
"""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.beir import write_beir

SCRIPT_DOC = "d13"
SCRIPT_TEXT = "Cats <script>alert('xss')</script> purr <b>loudly</b> & \"often\"."

DOCS = [
    ("d1", "Cats", "Cats are small domesticated felines that purr when content."),
    ("d2", "Dogs", "Dogs are loyal domesticated canines that bark at strangers."),
    ("d3", "Felines", "Lions and tigers are large wild felines that roar."),
    ("d4", "Fish", "Goldfish swim in bowls of water and eat flakes."),
    ("d5", "Birds", "Parrots can mimic human speech and sing songs."),
    ("d6", "Purring", "Why do cats purr? Purring is a feline vocalisation made by the larynx."),
    ("d7", "Pet care", "Pet care covers cats dogs fish birds and rabbits: feeding, grooming, vets, toys, "
                       "walks, cages, bowls, litter, leashes, brushes, vaccines and insurance for every pet."),
    ("d8", "Barking", "Why dogs bark: barking warns of strangers; loyal dogs bark to protect."),
    ("d9", "Big cats", "Tigers are the largest wild cats; lions live in prides on the savanna."),
    ("d10", "Talking birds", "Talking parrots and mynas mimic speech; parrots learn words."),
    ("d11", "Aquarium", "An aquarium keeps fish like goldfish and guppies in clean water."),
    ("d12", "Wildlife", "Wild animals: lions tigers wolves bears eagles sharks and snakes roam wild places "
                        "across forests plains mountains rivers oceans and deserts of the wild world."),
    (SCRIPT_DOC, "Noisy <i>cats</i>", SCRIPT_TEXT),
    ("d14", "Cat facts", "cats cats cats cats cats cats cats cats cats are everywhere"),
    ("d15", "Dog show", "dogs dogs dogs dogs dogs dogs dogs dogs at the show"),
    ("d16", "Parrot shop", "parrots parrots parrots parrots parrots parrots for sale"),
    ("d17", "Tiger toys", "tigers tigers tigers tigers tigers tigers tigers plush toys"),
]
QUERIES = [("q1", "why do cats purr"), ("q2", "loyal dogs bark"), ("q3", "wild lions and tigers"),
           ("q4", "talking parrots mimic speech"), ("q5", "goldfish water bowls"), ("q6", "pet care for cats"),
           ("q7", "parrots speech")]
QRELS = {"test": [("q1", "d6", 2), ("q1", "d1", 1), ("q1", SCRIPT_DOC, 1), ("q2", "d8", 2), ("q2", "d2", 1),
                  ("q3", "d9", 2), ("q3", "d3", 1), ("q3", "d12", 0), ("q4", "d10", 2), ("q4", "d5", 1),
                  ("q5", "d4", 1), ("q5", "d11", 1), ("q6", "d7", 2), ("q6", "d1", 0),
                  ("q7", "d16", 2), ("q7", "d10", 0)]}

PIPELINES = {"bm25": "bm25(k1=0.9, b=0.4)", "bm25_tf": "bm25(k1=5.0, b=0.0)",
             "fused": "fuse(bm25, bm25_tf, method=rrf, k=1)"}


def make_collection(folder: Path) -> Path:
    return write_beir(folder, docs=DOCS, queries=QUERIES, qrels=QRELS)


def make_experiment(root: Path, name: str = "tiny-exp") -> tuple[Path, Path]:
    """(collection folder, experiment output folder) under ``root``, written by the experiment recipe."""
    from rankstack.recipes.experiment import run_experiment

    collection = make_collection(root / "tinycoll")
    pipes = "".join(f'{k} = "{v}"\n' for k, v in PIPELINES.items())
    toml = root / "tiny.toml"
    toml.write_text(f'title = "Tiny <b>BM25</b> experiment"\ncollection = "{collection}"\nsplit = "test"\n'
                    f'measures = ["nDCG@10", "RR@10", "R@100"]\nbaseline = "bm25"\npermutations = 200\n'
                    f'depth = 20\n\n[pipelines]\n{pipes}')
    out = root / name
    run_experiment(toml, out_dir=out, cache_dir=None, report=False)
    return collection, out
