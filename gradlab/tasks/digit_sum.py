"""The NNDL digit-sum task (NNDL practice book, section 6.1.1), generated as the book does.

A sequence of L digits starts with two digits n1, n2; every later position is 0 except one position
drawn from 2..L−1 that holds a random digit (noise). The label is n1 + n2 (19 classes), so the model
must carry the first two digits across the whole sequence.

The book seeds ``random.seed(0); np.random.seed(0)`` once, then for L = 5, 10, …, 35 in that order
writes the splits train (k = 3), dev (k = 1), test (k = 1) in that order; a split holds, for every
(n1, n2) in row-major order, k copies, each drawing ``np.random.randint(2, L)`` then
``np.random.randint(0, 10)``. :func:`book_datasets` replays exactly that stream (the legacy
``RandomState`` that ``np.random.seed`` seeds), so it yields the book's files example for example.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from gradlab.tasks.base import Dataset, Task

NUM_DIGITS = 10
NUM_CLASSES = 19
PAIRS = NUM_DIGITS * NUM_DIGITS  # the (n1, n2) pairs a split of the book's construction holds k times each
BOOK_SEED = 0
BOOK_LENGTHS = (5, 10, 15, 20, 25, 30, 35)
BOOK_SPLITS = {"train": 3, "dev": 1, "test": 1}  # copies of each (n1, n2), in the book's order


def book_split(length: int, k: int, state: np.random.RandomState) -> Dataset:
    """One split as the book's ``generate_data(length, k)`` makes it, drawing from ``state``.

    Returns digits [100·k, length] and labels [100·k] (int64), in the book's order.
    """
    if length < 3:
        raise ValueError(f"the book's digit-sum needs a length of at least 3, got {length}")
    digits, labels = [], []
    for n1 in range(NUM_DIGITS):
        for n2 in range(NUM_DIGITS):
            for _ in range(k):
                seq = [n1, n2] + [0] * (length - 2)
                idx = state.randint(2, length)
                seq[idx] = state.randint(0, 10)
                digits.append(seq)
                labels.append(n1 + n2)
    return np.asarray(digits, dtype=np.int64), np.asarray(labels, dtype=np.int64)


def book_datasets(lengths: Iterable[int] = BOOK_LENGTHS, seed: int = BOOK_SEED,
                  splits: Optional[dict[str, int]] = None) -> dict[int, dict[str, Dataset]]:
    """Every split of every length, drawn in the book's order from one seeded stream.

    With the defaults these are the book's datasets; other lengths, copy counts (``splits``: name →
    k) or seeds give the same construction with other numbers.
    """
    state = np.random.RandomState(seed)
    splits = BOOK_SPLITS if splits is None else splits
    return {L: {name: book_split(L, k, state) for name, k in splits.items()} for L in lengths}


def sample_batch(length: int, batch: int, rng: np.random.Generator) -> Dataset:
    """A batch of digit-sum examples with random (n1, n2) (the distribution of the book's sets).

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


# -- the book's text files -------------------------------------------------------------------

def format_lines(data: Dataset) -> str:
    """The book's file text: one line ``"d1 d2 … dL\\tlabel\\n"`` per example."""
    digits, labels = data
    return "".join(" ".join(map(str, row)) + f"\t{label}\n" for row, label in zip(digits.tolist(), labels.tolist()))


def read_split(path: Path) -> Dataset:
    """Read a file in the book's format back into digits [N, L] and labels [N] (int64)."""
    digits, labels = [], []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        seq, sep, label = line.partition("\t")
        try:
            if not sep:
                raise ValueError("no tab before the label")
            row = [int(d) for d in seq.split(" ")]
            value = int(label)
        except ValueError as exc:
            raise ValueError(f"{path}:{n}: not a digit-sum line 'd1 d2 … dL<TAB>label' ({exc})") from None
        if digits and len(row) != len(digits[0]):
            raise ValueError(f"{path}:{n}: {len(row)} digits where earlier lines have {len(digits[0])}")
        if not all(0 <= d < NUM_DIGITS for d in row) or not 0 <= value < NUM_CLASSES:
            raise ValueError(f"{path}:{n}: digits must be 0..9 and the label 0..18")
        digits.append(row)
        labels.append(value)
    if not digits:
        raise ValueError(f"{path}: no examples")
    return np.asarray(digits, dtype=np.int64), np.asarray(labels, dtype=np.int64)


def read_datasets(root: Path, length: int) -> dict[str, Dataset]:
    """The splits of ``root/{length}/{train,dev,test}.txt`` (the layout ``gradlab data`` writes)."""
    folder = Path(root) / str(length)
    missing = [s for s in BOOK_SPLITS if not (folder / f"{s}.txt").is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} has no {', '.join(m + '.txt' for m in missing)}")
    return {s: read_split(folder / f"{s}.txt") for s in BOOK_SPLITS}


TASK = Task(name="digit-sum", summary="NNDL 6.1: the sum of the first two digits, noise later (19 classes)",
            target="class", outputs=NUM_CLASSES, chance=0.10,  # always guessing 9, the commonest sum
            vocab=NUM_DIGITS,
            make=lambda length, n, rng: sample_batch(length, n, rng), min_length=1)
