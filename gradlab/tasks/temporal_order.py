"""Temporal order (Hochreiter & Schmidhuber 1997, task 6a; in the form of Pascanu et al. 2013).

Every step holds a distractor symbol from {c, d, e, f}, except two steps that hold a relevant
symbol X, Y ∈ {A, B}: X at a random step in [T/10, 2T/10), Y in [5T/10, 6T/10). The class is the
ordered pair (X, Y) ∈ {AA, AB, BA, BB}; guessing scores 1/4.
"""

from __future__ import annotations

import numpy as np

from gradlab.tasks.base import Dataset, Task

SYMBOLS = ("A", "B", "c", "d", "e", "f")  # input ids 0..5; A, B relevant, the rest distractors
DISTRACTORS = 4


def make(length: int, n: int, rng: np.random.Generator) -> Dataset:
    """x [n, length] int64 (symbols 0..5), y [n] int64 (class 2·X + Y, 0..3)."""
    x = rng.integers(2, 2 + DISTRACTORS, size=(n, length))
    relevant = rng.integers(0, 2, size=(n, 2))
    first = rng.integers(length // 10, 2 * length // 10, size=n)
    second = rng.integers(5 * length // 10, 6 * length // 10, size=n)
    rows = np.arange(n)
    x[rows, first] = relevant[:, 0]
    x[rows, second] = relevant[:, 1]
    return x.astype(np.int64), (2 * relevant[:, 0] + relevant[:, 1]).astype(np.int64)


TASK = Task(name="temporal-order", summary="the order of two relevant symbols among distractors (4 classes)",
            target="class", outputs=4, chance=0.25, make=make, vocab=len(SYMBOLS), min_length=10)
