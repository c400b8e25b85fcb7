"""hardware.py: bf16 detection from /proc/cpuinfo, the RANKSTACK_BF16 override, the one precision
resolver, and the scoped thread / offline context managers."""

from __future__ import annotations

import logging
import os

import pytest

from rankstack import hardware
from rankstack.errors import InputError
from rankstack.hardware import (bf16_override, bf16_support, cpu_bf16_flags, hf_offline, resolve_precision,
                                torch_threads)

AMX = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f amx_bf16 amx_tile avx512_bf16\n"
AVX2 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse sse2 avx avx2 fma\n"


@pytest.fixture
def no_override(monkeypatch):
    monkeypatch.delenv("RANKSTACK_BF16", raising=False)


@pytest.fixture
def cpuinfo(tmp_path):
    def write(text: str):
        path = tmp_path / "cpuinfo"
        path.write_text(text)
        return path

    return write


def test_flags_from_a_fake_cpuinfo(cpuinfo, tmp_path):
    assert cpu_bf16_flags(cpuinfo(AMX)) == {"amx_bf16", "avx512_bf16"}
    assert cpu_bf16_flags(cpuinfo(AVX2)) == set()
    assert cpu_bf16_flags(cpuinfo("processor : 0\n")) == set()  # no flags line
    assert cpu_bf16_flags(tmp_path / "missing") == set()


def test_detection_from_a_fake_cpuinfo(cpuinfo, no_override):
    assert bf16_support(cpuinfo(AMX)) == (True, "CPU flag amx_bf16")
    ok, why = bf16_support(cpuinfo(AVX2))
    assert not ok and "no amx_bf16/avx512_bf16" in why


def test_override_both_ways_beats_the_cpu(cpuinfo, monkeypatch):
    monkeypatch.setenv("RANKSTACK_BF16", "0")
    assert bf16_override() is False
    ok, why = bf16_support(cpuinfo(AMX))
    assert not ok and "RANKSTACK_BF16=0" in why
    assert resolve_precision("auto")[0] == "fp32"
    assert resolve_precision("bf16")[0] == "fp32"
    monkeypatch.setenv("RANKSTACK_BF16", "1")
    assert bf16_override() is True
    ok, why = bf16_support(cpuinfo(AVX2))
    assert ok and "RANKSTACK_BF16=1" in why
    assert resolve_precision("auto") == ("bf16", why)
    monkeypatch.setenv("RANKSTACK_BF16", "")
    assert bf16_override() is None


@pytest.mark.parametrize("value", ["yes", "true", "2", "off"])
def test_invalid_override_is_one_clear_error(monkeypatch, value):
    monkeypatch.setenv("RANKSTACK_BF16", value)
    with pytest.raises(InputError, match=f"RANKSTACK_BF16={value!r} is not 0 or 1") as err:
        bf16_support()
    assert "\n" not in str(err.value)


def test_resolve_precision_choices_and_fallback(monkeypatch, caplog):
    with pytest.raises(InputError, match="unknown precision 'fp16'"):
        resolve_precision("fp16")
    with pytest.raises(InputError, match="bf16-weights"):
        resolve_precision("int8", ("auto", "fp32", "bf16", "bf16-weights"))
    assert resolve_precision("fp32") == ("fp32", "requested")
    monkeypatch.setattr(hardware, "bf16_support", lambda cpuinfo=None: (False, "no amx_bf16/avx512_bf16 CPU flag"))
    with caplog.at_level(logging.WARNING, logger="rankstack"):
        assert resolve_precision("bf16")[0] == "fp32"
        assert resolve_precision("bf16-weights", ("fp32", "bf16-weights"))[0] == "fp32"
    assert caplog.text.count("running fp32") == 2
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rankstack"):
        assert resolve_precision("auto")[0] == "fp32"  # auto falls back quietly
    assert "running fp32" not in caplog.text
    monkeypatch.setattr(hardware, "bf16_support", lambda cpuinfo=None: (True, "oneDNN reports native bf16"))
    assert resolve_precision("auto") == ("bf16", "oneDNN reports native bf16")
    assert resolve_precision("bf16-weights", ("fp32", "bf16-weights"))[0] == "bf16-weights"


def test_trainer_uses_the_same_resolver():
    from rankstack.train import trainer

    assert trainer.resolve_precision is hardware.resolve_precision


def test_torch_threads_sets_and_restores():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    with torch_threads(target):
        assert torch.get_num_threads() == target
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError):
        with torch_threads(target):
            raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    for leave in (0, None):
        with torch_threads(leave):
            assert torch.get_num_threads() == before
    with pytest.raises(InputError, match="threads"):
        with torch_threads(-1):
            pass
    with pytest.raises(InputError, match="threads"):
        with torch_threads("2"):  # type: ignore[arg-type]
            pass


def test_hf_offline_sets_and_restores_the_environment(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    before = dict(os.environ)
    with hf_offline():
        assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert dict(os.environ) == before
    with pytest.raises(KeyError):
        with hf_offline():
            raise KeyError("boom")
    assert dict(os.environ) == before


def test_hf_offline_restores_huggingface_hub_constant():
    constants = pytest.importorskip("huggingface_hub.constants")
    old = constants.HF_HUB_OFFLINE
    with hf_offline():
        assert constants.HF_HUB_OFFLINE is True
    assert constants.HF_HUB_OFFLINE == old
