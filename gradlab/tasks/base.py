"""What every task is: inputs, targets, a loss form and the score of guessing.

A task makes datasets ``(x, y)`` as numpy arrays, batch first:

- symbol inputs (``vocab`` set): x [N, T] int64, embedded by the problem;
- real-valued inputs (``vocab`` None): x [N, T, input_size] float32.

Targets depend on ``target``:

- ``"class"``: y [N] int64, read from the last step (digit-sum, temporal order, image rows);
- ``"value"``: y [N] float32, regressed from the last step with squared error (adding problem);
- ``"sequence"``: y [N, T] int64, one class per step (copy memory); ``scored_from_end`` steps at the
  end are the ones its accuracy counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

Dataset = tuple[np.ndarray, np.ndarray]  # (x, y), batch first
TARGETS = ("class", "value", "sequence")


@dataclass(frozen=True)
class Task:
    """A sequence task. ``make(length, n, rng)`` draws ``n`` examples of ``length`` steps; a task
    on fixed data (images) instead has ``load(data_dir, seed)`` → {"train", "dev", "test"}."""

    name: str
    summary: str
    target: str
    outputs: int  # readout width: classes, or 1 for a value
    chance: float  # accuracy of guessing (class, sequence) or MSE of the best constant (value)
    make: Optional[Callable[[int, int, np.random.Generator], Dataset]] = None
    load: Optional[Callable[[Optional[Path], int], dict[str, Dataset]]] = None  # fixed sets: (data dir, seed)
    vocab: Optional[int] = None  # number of input symbols; None for real-valued inputs
    input_size: int = 0  # width of real-valued inputs
    min_length: int = 1
    default_length: int = 10  # what gradlab train uses without --len
    fixed_length: Optional[int] = None  # image rows: the image height, not a choice (and the default)
    scored_from_end: int = 0  # "sequence" targets: the steps at the end that the accuracy counts

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")
        if (self.make is None) == (self.load is None):
            raise ValueError("a task has either make (generated) or load (fixed data)")

    @property
    def metric(self) -> str:
        """What ``score`` reports: "accuracy" (higher is better) or "mse" (lower is better)."""
        return "mse" if self.target == "value" else "accuracy"

    def check_length(self, length: int) -> None:
        if self.fixed_length is not None and length != self.fixed_length:
            raise ValueError(f"{self.name} has {self.fixed_length} steps (one per image row), not {length}")
        if length < self.min_length:
            raise ValueError(f"{self.name} needs a length of at least {self.min_length}, got {length}")
