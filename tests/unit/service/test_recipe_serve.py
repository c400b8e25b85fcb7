"""recipes.serve: an expression or one pipeline of an experiment file, built once; config checks."""

from __future__ import annotations

import pytest

from rankstack.errors import InputError, UnknownComponentError
from rankstack.recipes.serve import ServeConfig, is_loopback, load
from rankstack.service.state import find_reranker
from rankstack.types import Queries
from tests.fixtures.beir import write_beir


def test_expression_needs_a_collection(tmp_path):
    with pytest.raises(InputError, match="--collection is required"):
        load(ServeConfig(target="bm25", cache_dir=None))
    with pytest.raises(UnknownComponentError, match="did you mean 'bm25'"):
        load(ServeConfig(target="bm26", collection=str(write_beir(tmp_path / "c")), cache_dir=None))


def test_experiment_file_pipeline_by_name_and_baseline_by_default(tmp_path):
    coll = write_beir(tmp_path / "tiny")
    exp = tmp_path / "exp.toml"
    exp.write_text(f'collection = "{coll}"\nmeasures = ["nDCG@10"]\n[pipelines]\n'
                   'bm25 = "bm25(k1=0.9, b=0.4)"\nshallow = "bm25 % 2"\n', "utf-8")
    served = load(ServeConfig(target=str(exp), cache_dir=None))
    assert (served.name, served.spec, served.source) == ("bm25", "bm25(k1=0.9, b=0.4)", exp)
    shallow = load(ServeConfig(target=str(exp), pipeline="shallow", cache_dir=None, warmup=False))
    run = shallow.stage(Queries(("q",), ("why do cats purr",)))
    assert len(run) == 2 and shallow.collection.name == "tiny"
    assert find_reranker(shallow.stage) is None
    with pytest.raises(InputError, match="choose one of bm25, shallow"):
        load(ServeConfig(target=str(exp), pipeline="dense", cache_dir=None))


@pytest.mark.parametrize("kwargs,match", [({"port": 70000}, "--port"), ({"workers": 0}, "--workers"),
                                          ({"queue": -1}, "--queue"), ({"timeout": 0}, "--timeout"),
                                          ({"target": " "}, "empty"), ({"experiments": ["/nonexistent/x"]},
                                                                       "does not exist")])
def test_bad_settings_are_input_errors(kwargs, match):
    with pytest.raises(InputError, match=match):
        ServeConfig(**{"target": "bm25", **kwargs})


def test_loopback_detection():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1") and not is_loopback("example.org")
