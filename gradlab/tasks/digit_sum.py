"""The NNDL digit-sum task (NNDL practice book, section 6.1.1).

A sequence of L digits starts with two digits n1, n2; every later position is 0 except one
position drawn from 2..L−1 that holds a random digit (noise). The label is n1 + n2 (19 classes),
so the model must carry the first two digits across the whole sequence.
"""

from __future__ import annotations

import numpy as np

NUM_DIGITS = 10
NUM_CLASSES = 19


def sample_batch(length: int, batch: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A batch of digit-sum examples with random (n1, n2).

    Returns digits [batch, length] (int64) and labels [batch] (int64). For length 1 the sequence
    holds n1 only and the label is n1; for length 2 there is no noise position.
    """
    if length < 1 or batch < 1:
        raise ValueError("length and batch must be >= 1")
    digits = np.zeros((batch, length), dtype=np.int64)
    firsts = rng.integers(0, NUM_DIGITS, size=(batch, 2))
    width = min(length, 2)
    digits[:, :width] = firsts[:, :width]
    if length > 2:
        where = rng.integers(2, length, size=batch)
        digits[np.arange(batch), where] = rng.integers(0, NUM_DIGITS, size=batch)
    return digits, firsts[:, :width].sum(axis=1)
