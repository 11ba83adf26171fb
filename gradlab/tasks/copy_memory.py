"""Copy memory (Arjovsky et al. 2016, after Hochreiter & Schmidhuber 1997).

Ten symbols drawn from 8 categories, then blanks, a delimiter, and ten more blanks: after the
delimiter the model must output the ten symbols in order. With sequence length L = T + 20 (T the
delay), the input is [s1 … s10, blank × (T − 1), delimiter, blank × 10] and the target at every step
is the blank except the last ten steps, which hold s1 … s10. Guessing the blanks right and the ten
symbols at random costs a cross-entropy of 10·ln 8 / L per step (Arjovsky's baseline).
"""

from __future__ import annotations

import math

import numpy as np

from gradlab.tasks.base import Dataset, Task

CATEGORIES = 8
BLANK = 8
DELIMITER = 9
RECALL = 10  # symbols to remember


def make(length: int, n: int, rng: np.random.Generator) -> Dataset:
    """x [n, length] int64 (symbols 0..9), y [n, length] int64 (classes 0..8)."""
    symbols = rng.integers(0, CATEGORIES, size=(n, RECALL))
    x = np.full((n, length), BLANK, dtype=np.int64)
    x[:, :RECALL] = symbols
    x[:, length - RECALL - 1] = DELIMITER
    y = np.full((n, length), BLANK, dtype=np.int64)
    y[:, length - RECALL:] = symbols
    return x, y


def baseline_cross_entropy(length: int) -> float:
    """Arjovsky's baseline: the mean cross-entropy per step of guessing the symbols, 10·ln 8 / L."""
    return RECALL * math.log(CATEGORIES) / length


TASK = Task(name="copy", summary="repeat 10 symbols after a delay, at the end of the sequence (length = delay + 20)",
            target="sequence", outputs=CATEGORIES + 1, chance=1 / CATEGORIES, make=make,
            vocab=CATEGORIES + 2, min_length=2 * RECALL + 1, default_length=30, scored_from_end=RECALL)
