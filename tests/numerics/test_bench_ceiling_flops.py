"""benchmarks/bench_ceiling.py's FLOP formula against torch's own FLOP counter on a tiny random BERT.

The ceiling it reports is only as right as its count of a model's useful FLOPs, so the formula
(``layers x (L x 2 x (4h^2 + 2hi) + 4 x L^2 x h)`` per sequence of L tokens) is checked against
``torch.utils.flop_counter.FlopCounterMode`` running the model one unpadded sequence at a time.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from bench_ceiling import layer_shapes, useful_flops  # noqa: E402


def tiny_bert(hidden: int = 32, intermediate: int = 64, layers: int = 2):
    config = transformers.BertConfig(vocab_size=100, hidden_size=hidden, intermediate_size=intermediate,
                                     num_hidden_layers=layers, num_attention_heads=4, max_position_embeddings=64,
                                     num_labels=1, attn_implementation="eager")
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config).eval()


def counted_flops(model, lengths) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    total = 0
    for n in lengths:
        ids = torch.randint(1, 100, (1, int(n)))
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(input_ids=ids, attention_mask=torch.ones_like(ids))
        total += counter.get_total_flops()
    return total


def test_formula_matches_torch_flop_counter():
    h, i, layers = 32, 64, 2
    model = tiny_bert(h, i, layers)
    lengths = np.array([5, 12, 31])
    # the formula counts the encoder; the pooler (h x h) and the one-logit head (h x 1) run once per sequence
    head = len(lengths) * (2 * h * h + 2 * h)
    assert useful_flops(lengths, layers, h, i) + head == counted_flops(model, lengths)


def test_formula_grows_quadratically_only_in_attention():
    h, i, layers = 384, 1536, 6
    one = useful_flops(np.array([128]), layers, h, i)
    two = useful_flops(np.array([256]), layers, h, i)
    linear = layers * 128 * 2 * (4 * h * h + 2 * h * i)
    attention = layers * 4 * 128 ** 2 * h
    assert one == linear + attention
    assert two == 2 * linear + 4 * attention


def test_layer_shapes_are_the_six_products_of_a_bert_layer():
    assert layer_shapes(384, 1536) == [(384, 384)] * 4 + [(384, 1536), (1536, 384)]
