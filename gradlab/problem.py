"""The default problem of ``gradlab analyze``: a digit-sum classifier at initialisation.

As in the NNDL book (6.1.2): Embedding(10, 32) → recurrent model → Linear(H, 19) on the
hidden state, cross-entropy. The loss is summed over the batch (not averaged), so each sample's
gradient is that of its own loss; with the loss on every step it is summed over steps too.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from gradlab.models import MODEL_CLASSES, RecurrentModel
from gradlab.tasks.digit_sum import NUM_CLASSES, NUM_DIGITS

EMBED_DIM = 32  # the NNDL book's embedding size

LOSS_AT = ("last", "all")
LOSS_AT_TEXT = {"last": "the last step", "all": "every step"}


class DigitSumClassifier(nn.Module):
    """Digits [B, T] → embedding [T, B, 32] → model → logits [B, 19] (or [T, B, 19])."""

    def __init__(self, kind: str, hidden: int, layers: int = 1, nonlinearity: str = "tanh") -> None:
        super().__init__()
        # created in this order, so that under one seed every kind of model sees the same embedding
        self.embedding = nn.Embedding(NUM_DIGITS, EMBED_DIM)
        extra = {"nonlinearity": nonlinearity} if kind == "srn" else {}
        self.model: RecurrentModel = MODEL_CLASSES[kind](EMBED_DIM, hidden, num_layers=layers, **extra)
        self.readout = nn.Linear(hidden, NUM_CLASSES)

    def embed(self, digits: torch.Tensor) -> torch.Tensor:
        """digits: [B, T] int64 → the model's input x: [T, B, 32] (time-major, no grad)."""
        with torch.no_grad():
            return self.embedding(digits).transpose(0, 1).contiguous()

    def loss_fn(self, labels: torch.Tensor, loss_at: str) -> Callable[[torch.Tensor], torch.Tensor]:
        """The loss as a function of the model's output [T, B, H] (labels: [B])."""
        if loss_at not in LOSS_AT:
            raise ValueError(f"loss_at must be one of {LOSS_AT}, got {loss_at!r}")

        def loss(output: torch.Tensor) -> torch.Tensor:
            if loss_at == "last":
                return F.cross_entropy(self.readout(output[-1]), labels, reduction="sum")
            logits = self.readout(output)  # [T, B, 19]
            targets = labels.expand(output.shape[0], -1)
            return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum")

        return loss


    def input_fn(self, digits: torch.Tensor):
        """For the checkpointed driver: (t0, t1) → the model input of steps t0..t1−1, [S, B, 32]."""
        return lambda t0, t1: self.embed(digits[:, t0:t1])

    def explicit_fn(self, labels: torch.Tensor, loss_at: str, length: int):
        """For the checkpointed driver: (t0, t1, output) → ∂L/∂output for those steps.

        Returns the function and a callable giving the loss accumulated over the calls. The loss is
        a sum over steps, so each segment's part is the loss of that segment's outputs.
        """
        loss_fn = self.loss_fn(labels, loss_at)
        total = [0.0]

        def explicit(t0: int, t1: int, output: torch.Tensor) -> torch.Tensor:
            if loss_at == "last" and t1 < length:
                return torch.zeros_like(output)
            with torch.enable_grad():
                leaf = output.detach().requires_grad_(True)
                loss = loss_fn(leaf)
                (grad,) = torch.autograd.grad(loss, leaf)
            total[0] += float(loss.detach())
            return grad

        return explicit, lambda: total[0]


def build_problem(kind: str, hidden: int, layers: int, seed: int, dtype: torch.dtype = torch.float32,
                  device: str = "cpu", nonlinearity: str = "tanh") -> DigitSumClassifier:
    """The classifier around a fresh ``kind`` model, initialised from ``seed``."""
    torch.manual_seed(seed)
    return DigitSumClassifier(kind, hidden, layers, nonlinearity).to(device=device, dtype=dtype)
