"""Scoring a problem on a dataset: accuracy (classes, sequences) or mean squared error (values)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from gradlab.tasks.problem import SequenceProblem
from gradlab.tasks.base import Dataset


@dataclass(frozen=True)
class Score:
    metric: str  # "accuracy" or "mse"
    value: float
    loss: float  # mean loss per example (per scored step for sequences)

    def better_than(self, other: "Score | None") -> bool:
        if other is None:
            return True
        return self.value < other.value if self.metric == "mse" else self.value > other.value


@torch.no_grad()
def score(problem: SequenceProblem, data: Dataset, batch: int = 256, loss_at: str = "last") -> Score:
    """Score ``problem`` on ``data`` = (x [N, T(, D)], y), in batches of ``batch``."""
    task = problem.task
    device = problem.readout.weight.device
    x_all, y_all = data
    hits = total = 0
    loss_sum = 0.0
    for start in range(0, len(y_all), batch):
        x = torch.as_tensor(x_all[start:start + batch], device=device)
        y = torch.as_tensor(y_all[start:start + batch], device=device)
        output = problem(x)  # [T, B, H]
        loss_sum += float(problem.loss_of(output, y, 0, output.shape[0], loss_at, reduction="sum"))
        if task.target == "value":  # the squared error at the last step: the loss itself with loss_at "last"
            hits += float(problem.loss_of(output, y, 0, output.shape[0], "last", reduction="sum"))
            total += len(y)
        elif task.target == "sequence":
            k = task.scored_from_end
            predicted = problem.readout(output[-k:]).argmax(-1)  # [k, B]
            hits += int((predicted == y[:, -k:].T).sum())
            total += predicted.numel()
        else:
            hits += int((problem.readout(output[-1]).argmax(-1) == y).sum())
            total += len(y)
    steps = x_all.shape[1] if task.target == "sequence" or loss_at == "all" else 1
    return Score(task.metric, _overflowed_as_inf(hits / total), _overflowed_as_inf(loss_sum / (len(y_all) * steps)))


def _overflowed_as_inf(value: float) -> float:
    """A NaN here comes from an overflowed forward pass (inf − inf, inf · 0): report it as inf."""
    return math.inf if math.isnan(value) else value


def as_batches(data: Dataset, batch: int, order: np.ndarray):
    """(x, y) numpy batches of ``data`` in ``order`` (the last one may be smaller, as the book's loader)."""
    x, y = data
    for start in range(0, len(order), batch):
        idx = order[start:start + batch]
        yield x[idx], y[idx]
