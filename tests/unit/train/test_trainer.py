"""The Trainer: learns on synthetic LETOR-like data, is reproducible, stops early, checkpoints
without pickle, runs bf16 where the CPU supports it, and honours lr multipliers and weights."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from rankstack.errors import InputError  # noqa: E402
from rankstack.hardware import bf16_support  # noqa: E402
from rankstack.train import Trainer  # noqa: E402
from rankstack.train.checkpoint import HISTORY_FILE, WEIGHTS_FILE, load_checkpoint, read_history, save_checkpoint  # noqa: E402
from rankstack.train.trainer import TrainingDivergedError  # noqa: E402

D = 8


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    """Shared fixture in tests/conftest.py."""


def make_data(n_queries: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Lists of 5-10 documents; grade 0-3 from a noisy linear function of the features."""
    rng = np.random.default_rng(seed)
    w = np.random.default_rng(123).normal(size=D)
    out = []
    for _ in range(n_queries):
        n = int(rng.integers(5, 11))
        x = rng.normal(size=(n, D)).astype(np.float32)
        z = x @ w + rng.normal(scale=0.3, size=n)
        y = np.digitize(z, [-1.0, 0.5, 2.0]).astype(np.float32)
        if y.max() == 0:
            y[np.argmax(z)] = 1
        out.append({"x": x, "y": y})
    return out


def collate(examples):
    B, L = len(examples), max(len(e["y"]) for e in examples)
    x = torch.zeros(B, L, D)
    y = torch.zeros(B, L)
    m = torch.zeros(B, L, dtype=torch.bool)
    for b, e in enumerate(examples):
        n = len(e["y"])
        x[b, :n] = torch.from_numpy(e["x"])
        y[b, :n] = torch.from_numpy(e["y"])
        m[b, :n] = True
    return {"x": x}, y, m, None


class MLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(D, 16), torch.nn.ReLU())
        self.head = torch.nn.Linear(16, 1)

    def forward(self, inputs):
        return self.head(self.body(inputs["x"])).squeeze(-1)


def make_model(seed: int = 0) -> MLP:
    torch.manual_seed(seed)
    return MLP()


def ndcg_at(scores: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    order = np.argsort(-scores, kind="stable")[:k]
    disc = 1 / np.log2(np.arange(2, len(order) + 2))
    dcg = ((2 ** labels[order] - 1) * disc).sum()
    ideal = ((2 ** np.sort(labels)[::-1][:k] - 1) * disc).sum()
    return float(dcg / ideal) if ideal > 0 else 0.0


def mean_ndcg(model, data) -> float:
    inputs, y, m, _ = collate(data)
    with torch.no_grad():
        s = model(inputs).float().numpy()
    return float(np.mean([ndcg_at(s[b][m[b].numpy()], y[b][m[b]].numpy()) for b in range(len(data))]))


TRAIN = make_data(96, seed=1)
VALID = make_data(40, seed=2)


# ------------------------------------------------------------------------------------------
def test_mlp_learns_with_listnet_and_validation_improves():
    model = make_model()
    before = mean_ndcg(model, VALID)
    trainer = Trainer(model, "listnet", lr=1e-2, epochs=8, batch_size=16, warmup_ratio=0.1, precision="fp32",
                      validate_fn=lambda mdl: mean_ndcg(mdl, VALID), progress=False)
    result = trainer.fit(TRAIN, collate)
    after = mean_ndcg(model, VALID)
    assert after > before + 0.1, (before, after)
    assert after > 0.85
    assert result.steps == 8 * 6 and result.epochs == pytest.approx(8.0)
    assert result.best_value == pytest.approx(max(h["value"] for h in trainer.history if h["event"] == "validation"))
    assert after == pytest.approx(result.best_value, abs=1e-6)  # best weights restored
    losses = [h["loss"] for h in trainer.history if h["event"] == "train"]
    assert np.mean(losses[-6:]) < np.mean(losses[:6])
    assert sum(h["event"] == "validation" for h in trainer.history) == 8  # once per epoch


def test_validation_with_rankstack_evaluate():
    """validate_fn may use the real evaluate (nDCG@10 over a Run and Qrels)."""
    evaluate_mod = pytest.importorskip("rankstack.evaluate")
    from rankstack.types import Qrels, Run

    qrels = Qrels.from_dict({f"q{i}": {f"d{j}": int(v) for j, v in enumerate(e["y"])} for i, e in enumerate(VALID)})

    def validate(model) -> float:
        inputs, _, m, _ = collate(VALID)
        s = model(inputs).float().numpy()
        run = Run.from_dict({f"q{i}": {f"d{j}": float(s[i, j]) for j in range(int(m[i].sum()))}
                             for i in range(len(VALID))})
        return evaluate_mod.evaluate(run, qrels, "nDCG@10")["nDCG@10"]

    model = make_model()
    result = Trainer(model, "lambdaloss", lr=1e-2, epochs=2, batch_size=16, precision="fp32",
                     validate_fn=validate, progress=False).fit(TRAIN, collate)
    with torch.no_grad():
        assert result.best_value == pytest.approx(validate(model), abs=1e-9)  # trec_eval gains are linear
    assert result.best_value > 0.8


def test_same_seed_same_losses_and_different_seed_differs():
    def run(seed: int) -> list[float]:
        model = make_model(0)
        model.body.append(torch.nn.Dropout(0.2))  # exercises the seeded torch RNG too
        trainer = Trainer(model, "listnet", lr=1e-2, max_steps=15, batch_size=8, seed=seed,
                          precision="fp32", progress=False)
        trainer.fit(TRAIN, collate)
        return [h["loss"] for h in trainer.history if h["event"] == "train"]

    torch.manual_seed(999)
    outside = torch.rand(1)
    a, b = run(7), run(7)
    assert a == b
    assert run(8) != a
    torch.manual_seed(999)
    assert torch.equal(torch.rand(1), outside), "fit must not disturb the caller's global RNG state"


def test_early_stopping_restores_the_best_weights():
    values = iter([0.5, 0.6, 0.55, 0.54, 0.9, 0.9])
    snapshots = []

    def validate(model) -> float:
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(values)

    model = make_model()
    trainer = Trainer(model, "ranknet", lr=1e-2, epochs=50, batch_size=16, validate_every=1, patience=2,
                      validate_fn=validate, precision="fp32", progress=False)
    result = trainer.fit(TRAIN, collate)
    assert result.stopped_early
    assert result.steps == 4 and result.best_step == 2 and result.best_value == 0.6
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, snapshots[1][k], rtol=0, atol=0)


def test_checkpoint_round_trip_is_safetensors_with_manifest(tmp_path):
    model = make_model()
    ckpt = tmp_path / "best"
    values = iter([0.1, 0.3, 0.2])
    trainer = Trainer(model, {"name": "approxndcg", "args": {"temperature": 0.5}}, lr=1e-2, max_steps=3,
                      batch_size=16, validate_every=1, validate_fn=lambda m: next(values),
                      checkpoint_dir=ckpt, restore_best=False, precision="fp32", progress=False)
    result = trainer.fit(TRAIN, collate)
    assert result.checkpoint == str(ckpt)
    names = sorted(p.name for p in ckpt.iterdir())
    assert names == sorted([WEIGHTS_FILE, "manifest.json", "history.json"])
    assert not any(n.endswith((".pt", ".pkl", ".bin")) for n in names)
    manifest = json.loads((ckpt / "manifest.json").read_text())
    assert manifest["kind"] == "checkpoint" and manifest["step"] == 2 and manifest["validation"] == 0.3
    assert manifest["params"]["loss"] == {"name": "approxndcg", "args": {"temperature": 0.5}}
    assert len(json.loads((ckpt / "history.json").read_text())) == len(trainer.history)

    fresh = make_model(seed=5)
    load_checkpoint(fresh, ckpt)
    # restore_best=False: the trained model ran one more step, the checkpoint holds step 2
    reloaded = {k: v.clone() for k, v in fresh.state_dict().items()}
    assert any(not torch.equal(reloaded[k], v) for k, v in model.state_dict().items())

    # a direct save/load round-trips exactly
    save_checkpoint(model, tmp_path / "direct", params={"note": "x"})
    other = make_model(seed=6)
    load_checkpoint(other, tmp_path / "direct")
    for k, v in model.state_dict().items():
        assert torch.equal(other.state_dict()[k], v)

    # a corrupted file is refused
    raw = bytearray((tmp_path / "direct" / WEIGHTS_FILE).read_bytes())
    raw[-1] ^= 0xFF
    (tmp_path / "direct" / WEIGHTS_FILE).write_bytes(bytes(raw))
    with pytest.raises(InputError, match="checksum"):
        load_checkpoint(other, tmp_path / "direct")
    with pytest.raises(InputError, match="does not fit"):
        load_checkpoint(torch.nn.Linear(3, 1), ckpt)


def test_final_state_is_saved_without_validation(tmp_path):
    model = make_model()
    Trainer(model, "mse", lr=1e-2, max_steps=2, batch_size=16, checkpoint_dir=tmp_path / "final",
            precision="fp32", progress=False).fit(TRAIN, collate)
    fresh = make_model(seed=3)
    manifest = load_checkpoint(fresh, tmp_path / "final")
    assert manifest["step"] == 2
    for k, v in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v)


def test_bf16_path_runs_and_is_recorded():
    ok, why = bf16_support()
    if not ok:
        pytest.skip(f"no native bf16 on this CPU ({why})")
    model = make_model()
    seen = []
    model.head.register_forward_hook(lambda mod, args, out: seen.append(out.dtype))
    trainer = Trainer(model, "listnet", lr=1e-2, max_steps=4, batch_size=16, precision="bf16", progress=False)
    result = trainer.fit(TRAIN, collate)
    assert result.precision == "bf16" and trainer.precision_used == "bf16" and result.precision_reason
    assert seen and all(d == torch.bfloat16 for d in seen)
    assert all(np.isfinite(h["loss"]) for h in trainer.history if h["event"] == "train")
    assert next(model.parameters()).dtype == torch.float32  # master weights stay fp32
    assert Trainer(make_model(), "listnet", max_steps=1, precision="auto").precision_used == "bf16"


def test_fp32_precision_is_recorded():
    trainer = Trainer(make_model(), "listnet", max_steps=1, precision="fp32")
    assert trainer.precision_used == "fp32"


def test_param_group_multipliers_and_warmup_schedule():
    model = make_model()
    trainer = Trainer(model, "listnet", lr=1e-2, max_steps=10, batch_size=16, warmup_ratio=0.3,
                      param_groups={"head": 10.0}, weight_decay=0.01, precision="fp32", progress=False)
    trainer.fit(TRAIN, collate)
    groups = trainer.optimizer.param_groups
    head_ids = {id(p) for p in model.head.parameters()}
    for g in groups:
        is_head = all(id(p) in head_ids for p in g["params"])
        assert g["lr_multiplier"] == (10.0 if is_head else 1.0)
        assert g["weight_decay"] == (0.01 if all(p.dim() >= 2 for p in g["params"]) else 0.0)
    lrs = [h["lr"] for h in trainer.history if h["event"] == "train"]
    peak = int(np.argmax(lrs))
    assert peak == 3 and lrs[0] < lrs[1] < lrs[peak] and lrs[-1] < lrs[peak]
    with pytest.raises(InputError, match="match no"):
        Trainer(make_model(), "listnet", max_steps=1, param_groups={"classifier": 2.0}).fit(TRAIN, collate)


def test_weights_from_collate_reach_the_loss():
    def zero_weights(examples):
        inputs, y, m, _ = collate(examples)
        return inputs, y, m, torch.zeros_like(y)

    model = make_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    Trainer(model, "listnet", lr=1e-1, max_steps=3, batch_size=16, precision="fp32",
            progress=False).fit(TRAIN, zero_weights)
    for k, v in model.state_dict().items():
        assert torch.equal(before[k], v)


def test_iterable_data_with_max_steps_and_grad_accum():
    class Stream:
        def __iter__(self):
            return iter(TRAIN)

    model = make_model()
    trainer = Trainer(model, "hinge", lr=1e-2, max_steps=5, batch_size=8, grad_accum=2, precision="fp32",
                      progress=False)
    result = trainer.fit(Stream(), collate)
    assert result.steps == 5
    with pytest.raises(InputError, match="max_steps"):
        Trainer(make_model(), "hinge", epochs=1).fit(Stream(), collate)


def test_time_budget_stops_after_the_first_step_past_it():
    model = make_model()
    trainer = Trainer(model, "listnet", lr=1e-2, epochs=50, batch_size=8, precision="fp32", progress=False,
                      time_budget=1e-6)
    result = trainer.fit(TRAIN, collate)
    assert result.steps == 1 and result.stopped_by_budget
    assert trainer.config()["time_budget"] == 1e-6
    full = Trainer(make_model(), "listnet", lr=1e-2, epochs=1, batch_size=8, precision="fp32", progress=False,
                   time_budget=3600).fit(TRAIN, collate)
    assert full.steps == 12 and not full.stopped_by_budget
    with pytest.raises(InputError, match="time_budget"):
        Trainer(make_model(), "listnet", max_steps=1, time_budget=0)


def test_input_errors_and_divergence():
    with pytest.raises(InputError, match="epochs"):
        Trainer(make_model(), "listnet")
    with pytest.raises(InputError, match="precision"):
        Trainer(make_model(), "listnet", max_steps=1, precision="fp16")
    with pytest.raises(InputError, match="optimizer"):
        Trainer(make_model(), "listnet", max_steps=1, optimizer="lamb")
    with pytest.raises(InputError, match="validate_fn"):
        Trainer(make_model(), "listnet", max_steps=1, patience=2)
    with pytest.raises(InputError, match="collate"):
        Trainer(make_model(), "listnet", max_steps=1, progress=False).fit(TRAIN, lambda ex: collate(ex)[:3])

    def nan_loss(scores, labels, mask, weights=None):
        return scores.sum() * float("nan")

    with pytest.raises(TrainingDivergedError, match="step 0"):
        Trainer(make_model(), nan_loss, max_steps=2, precision="fp32", progress=False).fit(TRAIN, collate)


def test_checkpoint_history_is_part_of_the_verified_artefact(tmp_path):
    """history.json is written inside the atomic save and listed in the manifest, so a checkpoint with
    its final history still verifies; the weights stay those of the best validation."""
    ckpt = tmp_path / "best"
    values = iter([0.5, 0.1, 0.2])
    trainer = Trainer(make_model(), "listnet", lr=1e-2, max_steps=3, batch_size=16, validate_every=1,
                      validate_fn=lambda m: next(values), checkpoint_dir=ckpt, restore_best=False,
                      precision="fp32", progress=False)
    trainer.fit(TRAIN, collate)
    manifest = load_checkpoint(make_model(seed=9), ckpt)
    assert HISTORY_FILE in manifest["files"] and manifest["step"] == 1 and manifest["validation"] == 0.5
    history = read_history(ckpt)
    assert history == json.loads(json.dumps(trainer.history))
    assert [h["step"] for h in history if h["event"] == "validation"] == [1, 2, 3]


def test_checkpoint_refuses_a_folder_that_is_not_a_checkpoint(tmp_path):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "thesis.txt").write_text("years of work")
    with pytest.raises(InputError, match="not a rankstack artefact"):
        save_checkpoint(make_model(), folder)
    assert (folder / "thesis.txt").read_text() == "years of work"
    save_checkpoint(make_model(), tmp_path / "ck")
    with pytest.raises(InputError, match="already holds"):
        save_checkpoint(make_model(), tmp_path / "ck", overwrite=False)


def test_fit_restores_the_callers_torch_threads():
    before = torch.get_num_threads()
    want = 2 if before == 1 else 1
    seen = []
    model = make_model()
    model.head.register_forward_hook(lambda mod, args, out: seen.append(torch.get_num_threads()))
    Trainer(model, "listnet", max_steps=2, batch_size=16, num_threads=want, precision="fp32",
            progress=False).fit(TRAIN, collate)
    assert seen and set(seen) == {want}
    assert torch.get_num_threads() == before
