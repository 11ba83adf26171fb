"""The adding problem (Hochreiter & Schmidhuber 1997, in the form of Arjovsky et al. 2016).

Input [T, 2]: channel 0 uniform in [0, 1]; channel 1 zero except two 1s, one in the first half
[0, T/2) and one in the second [T/2, T). Target: the sum of the two marked values, regressed with
squared error. Always predicting 1 scores MSE = Var(u1 + u2) = 1/6 ≈ 0.167.
"""

from __future__ import annotations

import numpy as np

from gradlab.tasks.base import Dataset, Task


def make(length: int, n: int, rng: np.random.Generator) -> Dataset:
    """x [n, length, 2] float32, y [n] float32."""
    values = rng.uniform(0.0, 1.0, size=(n, length))
    half = length // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, length, size=n)
    marks = np.zeros((n, length))
    rows = np.arange(n)
    marks[rows, first] = 1.0
    marks[rows, second] = 1.0
    x = np.stack([values, marks], axis=-1).astype(np.float32)
    y = (values[rows, first] + values[rows, second]).astype(np.float32)
    return x, y


TASK = Task(name="adding", summary="the sum of two marked values, one in each half (MSE; baseline 1/6)",
            target="value", outputs=1, chance=1 / 6, make=make, input_size=2, min_length=2)
