"""Fuzzing the experiment-file loader (``load_experiment``: rankstack.recipes.experiment, formerly
rankstack.experiment.runner).

Inputs: random bytes, mutations of a valid file, and generated TOML documents whose keys are the
loader's (plus strays) with values of every TOML type. Any input gives an ExperimentSpec or a
RankstackError, never another exception.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rankstack.errors import InputError
from tests.fuzz.fuzzlib import FUZZ, holds, mutated, write_temp

try:
    from rankstack.recipes.experiment import ExperimentSpec, load_experiment
except ImportError:  # before the recipes move
    from rankstack.experiment.runner import ExperimentSpec, load_experiment

KEYS = {f.name for f in dataclasses.fields(ExperimentSpec)} - {"path"}

VALID = b'''title = "fuzz"
collection = "tiny"
split = "test"
measures = ["nDCG@10", "AP"]
baseline = "bm25"
depth = 100
seed = 0
recall_depths = [10, 100]

[pipelines]
bm25 = "bm25"
tuned = "bm25(k1=1.2) % 50"
'''


def toml_value(v) -> str:
    """A minimal TOML writer for the generated values (no TOML writer is a dependency)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # JSON string escapes are TOML basic-string escapes (\\ud800 is refused)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


scalar = st.one_of(st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(), st.text(max_size=12),
                   st.sampled_from(["bm25", "tiny", "nDCG@10", "AP", "test", "fuse(bm25, bm25)", ""]))
value = st.recursive(scalar, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                     max_leaves=8)
pipelines = st.dictionaries(st.one_of(st.sampled_from(["bm25", "b", "x y", "1a", "dense"]), st.text(max_size=5)),
                            st.one_of(st.sampled_from(["bm25", "bm25 % 10", "", " ", "fuse(bm25, b)"]), value),
                            max_size=3)


BASE = {"title": "fuzz", "collection": "tiny", "split": "test", "measures": ["nDCG@10", "AP"],
        "baseline": "bm25", "depth": 100, "seed": 0, "recall_depths": [10, 100], "permutations": 100,
        "alpha": 0.05, "data_root": "data"}


@st.composite
def documents(draw: st.DrawFn) -> bytes:
    """A valid file with one to three keys replaced by values of any type, dropped, or added."""
    raw = dict(BASE)
    for key in draw(st.lists(st.sampled_from(sorted(KEYS | {"colection", "extra"})), min_size=1, max_size=3)):
        if draw(st.integers(0, 3)) == 0:
            raw.pop(key, None)
        else:
            raw[key] = draw(value)
    lines = [f"{json.dumps(k)} = {toml_value(v)}" for k, v in raw.items() if k != "pipelines"]
    table = raw.get("pipelines", {"bm25": "bm25", "tuned": "bm25 % 10"})
    if draw(st.integers(0, 3)) == 0:
        table = draw(pipelines)
    if isinstance(table, dict):
        lines.append("[pipelines]")
        lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in table.items()]
    else:
        lines.insert(0, f"pipelines = {toml_value(table)}")
    return "\n".join(lines).encode("utf-8", "surrogatepass") + b"\n"


@FUZZ
@given(st.one_of(st.binary(max_size=300), mutated(VALID), documents()))
def test_experiment_loader(data):
    spec = holds(lambda: load_experiment(write_temp(data, "exp.toml")))
    if spec is not None:
        assert isinstance(spec, ExperimentSpec)
        assert spec.pipelines and spec.baseline in spec.pipelines
        assert isinstance(spec.depth, int) and spec.depth >= 1


# Inputs that broke the first loader (TypeError from 'baseline not in pipelines'); kept as cases.
FOUND = [
    pytest.param(b'collection = "c"\nbaseline = [1]\n[pipelines]\nbm25 = "bm25"\n', id="baseline-list"),
    pytest.param(b'collection = "c"\nbaseline = {a = 1}\n[pipelines]\nbm25 = "bm25"\n', id="baseline-table"),
    pytest.param(b'collection = "c"\ndata_root = 5\n[pipelines]\nbm25 = "bm25"\n', id="data-root-int"),
    pytest.param(b'collection = "c"\ndepth = 1e400\n[pipelines]\nbm25 = "bm25"\n', id="depth-inf"),
    pytest.param(b'collection = "c"\nmeasures = [[]]\n[pipelines]\nbm25 = "bm25"\n', id="measures-nested"),
    pytest.param(b'collection = "c"\n[pipelines]\nbm25 = ["bm25"]\n', id="pipeline-list"),
    pytest.param(b'collection = "c"\npipelines = 3\n', id="pipelines-int"),
    pytest.param(b'collection = "c"\nx = ' + b"[" * 5000 + b"]" * 5000 + b'\n', id="deep-array"),
]


@pytest.mark.parametrize("data", FOUND)
def test_found_by_the_fuzzer(data):
    with pytest.raises(InputError):
        load_experiment(write_temp(data, "exp.toml"))
