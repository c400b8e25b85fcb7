"""Batches for the Trainer: shuffled per epoch, optionally bucketed by length.

Why bucketing: a transformer batch is padded to its longest example, so a batch that mixes short
and long examples spends compute on padding. Sorting examples by length inside a window of a few
dozen shuffled batches, cutting the window into batches and shuffling those batches keeps most of
the randomness of plain shuffling while padding much less ("bucketing", as in Khomenko et al.,
"Accelerating recurrent neural network training using sequence bucketing and multi-GPU data
parallelization", 2016; fairseq's and AllenNLP's bucket iterators). Hand-written because torch's
samplers have no seeded bucketing over a plain list, and this is a dozen lines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

__all__ = ["epoch_batches"]


def epoch_batches(data: Any, batch_size: int, rng: np.random.Generator, *, shuffle: bool = True,
                  drop_last: bool = False, bucket_key: Callable[[Any], float] | None = None,
                  bucket_window: int = 50) -> Iterator[list[Any]]:
    """One epoch of batches of ``data`` (a sized sequence, or any iterable: then in order, unbucketed).

    ``bucket_key(example) -> length``: within each window of ``bucket_window`` batches (of the
    shuffled order), examples are sorted by length, cut into batches, and the window's batches are
    shuffled. Same ``rng`` state, same batches.
    """
    if not (hasattr(data, "__len__") and hasattr(data, "__getitem__")):
        batch: list[Any] = []
        for example in data:
            batch.append(example)
            if len(batch) == batch_size:
                yield batch
                batch = []
        if batch and not drop_last:
            yield batch
        return
    n = len(data)
    order = rng.permutation(n) if shuffle else np.arange(n)
    if bucket_key is None:
        chunks = [order[s:s + batch_size] for s in range(0, n, batch_size)]
    else:
        chunks = []
        span = max(1, bucket_window) * batch_size
        for w in range(0, n, span):
            window = order[w:w + span]
            keys = np.array([float(bucket_key(data[int(i)])) for i in window])
            window = window[np.argsort(-keys, kind="stable")]
            part = [window[s:s + batch_size] for s in range(0, len(window), batch_size)]
            if shuffle:
                part = [part[int(j)] for j in rng.permutation(len(part))]
            chunks.extend(part)
    for idx in chunks:
        if drop_last and len(idx) < batch_size:
            continue
        yield [data[int(i)] for i in idx]
