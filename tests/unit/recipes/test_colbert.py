"""``rankstack train colbert``: a tiny random-init model trains end to end in seconds and is loadable."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("faiss")

from rankstack.errors import InputError  # noqa: E402
from rankstack.recipes.colbert import ColBERTTrainConfig, run  # noqa: E402
from tests.fixtures.beir import TINY_QRELS, write_beir  # noqa: E402
from tests.fixtures.models import make_tiny_bert  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("colbert")
    qrels = {"test": TINY_QRELS["test"], "train": TINY_QRELS["test"] + TINY_QRELS["train"]}
    coll = write_beir(root / "tiny", qrels=qrels)
    return coll, make_tiny_bert(root / "bert", head=False), root


def _config(coll, bert, root, **kw):
    base = dict(collection=str(coll), base=str(bert), dim=8, query_maxlen=8, doc_maxlen=24, n_negatives=2,
                depth=5, batch_size=2, epochs=3, lr=1e-3, validation=1, val_depth=5, precision="fp32",
                cache_dir=root / "cache", threads=1)
    return ColBERTTrainConfig(**{**base, **kw})


@pytest.mark.parametrize("freeze", [False, True])
def test_tiny_training_end_to_end(tiny, freeze, tmp_path):
    from rankstack.encode.colbert import ColBERTEncoder
    from rankstack.retrieve.late_interaction import ColBERTIndex, ColBERTRetriever, TokenStore
    from rankstack.data.beir import Collection

    coll, bert, root = tiny
    before = ColBERTEncoder(str(bert), dim=8, query_maxlen=8, doc_maxlen=24, seed=0)
    out = tmp_path / "model"
    outcome = run(_config(coll, bert, root, out=out, freeze_encoder=freeze))
    assert outcome.steps >= 3 and outcome.best_validation is not None
    losses = [h["loss"] for h in outcome.history if h.get("event") == "train"]
    assert all(np.isfinite(losses))
    loaded = ColBERTEncoder(str(out))
    assert loaded.encoder_id == outcome.encoder.encoder_id != before.encoder_id
    assert (loaded.states_id == before.states_id) == freeze  # a frozen encoder reuses the cached token states
    assert not np.allclose(loaded.projection_weight(), before.projection_weight())
    collection = Collection(coll)
    index = ColBERTIndex.build(TokenStore.from_collection(loaded, collection), ncentroids=4)
    run_ = ColBERTRetriever(loaded, index, k=3)(collection.queries("test"))
    assert len(run_) == 9


def test_config_and_output_refusals(tiny, tmp_path):
    coll, bert, root = tiny
    with pytest.raises(InputError, match="n_negatives"):
        _config(coll, bert, root, n_negatives=0)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.txt").write_text("keep me")
    with pytest.raises(InputError):
        run(_config(coll, bert, root, out=tmp_path / "notes"))
    assert (tmp_path / "notes" / "thesis.txt").read_text() == "keep me"


def test_cli_bad_flag_is_one_line(tiny, capsys):
    from rankstack.cli import main

    coll, bert, root = tiny
    code = main(["train", "colbert", "--collection", str(coll), "--base", str(bert), "--batch-size", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "batch_size" in err[0]
