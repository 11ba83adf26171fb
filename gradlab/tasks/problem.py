"""A task around a recurrent model: encoder → SRN/LSTM/GRU → linear readout, and its loss.

As in the NNDL book (6.1.2) for digit-sum: Embedding(10, 32) → model → Linear(H, 19) on the last
hidden state, cross-entropy. Tasks with real-valued inputs (adding, image rows) feed them to the
model directly. The loss reads the last step (``loss_at="last"``) or every step (``"all"``);
sequence targets (copy memory) are read at every step whatever ``loss_at`` says.

The analysis loss is summed over the batch (not averaged), so each sample's gradient is that of its
own loss; training may average it (``reduction="mean"``) as the book does.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from gradlab.models.recurrent import RecurrentModel, build_model
from gradlab.tasks import digit_sum
from gradlab.tasks.base import Task

EMBED_DIM = 32  # the NNDL book's embedding size

LOSS_AT = ("last", "all")
LOSS_AT_TEXT = {"last": "the last step", "all": "every step"}
#: The loss of each kind of target (gradlab.tasks.base.TARGETS), as run summaries name it.
LOSS_NAMES = {"class": "cross-entropy", "sequence": "cross-entropy", "value": "squared error"}


class SequenceProblem(nn.Module):
    """Inputs [B, T] (symbols) or [B, T, D] (values) → model input [T, B, I] → readout [T, B, O]."""

    def __init__(self, kind: str, hidden: int, layers: int = 1, nonlinearity: str = "tanh",
                 task: Task = digit_sum.TASK) -> None:
        super().__init__()
        self.task = task
        # created in this order, so that under one seed every kind of model sees the same embedding
        self.embedding = nn.Embedding(task.vocab, EMBED_DIM) if task.vocab else None
        width = EMBED_DIM if task.vocab else task.input_size
        self.model: RecurrentModel = build_model(kind, width, hidden, layers, nonlinearity=nonlinearity)
        self.readout = nn.Linear(hidden, task.outputs)

    def describe(self, loss_at: str = "last", reduction: str = "sum") -> dict[str, str]:
        """What this problem is, in words, from the modules and the task that make it up."""
        first = (f"Embedding({self.embedding.num_embeddings}, {self.embedding.embedding_dim})"
                 if self.embedding is not None else f"inputs of {self.task.input_size} values per step")
        return {"task": f"{self.task.name}: {self.task.summary}",
                "model": f"{first} -> {type(self.model).__name__}({self.model.extra_repr()}) -> {self.readout!r}",
                "loss": self.loss_description(loss_at, reduction)}

    def loss_description(self, loss_at: str = "last", reduction: str = "sum") -> str:
        """E.g. "squared error summed over the batch, on the last step"."""
        name = LOSS_NAMES[self.task.target]
        return f"{name} {'summed' if reduction == 'sum' else 'averaged'} over the batch, on {self.loss_steps(loss_at)}"

    def loss_steps(self, loss_at: str = "last") -> str:
        """The steps the loss reads, in words (sequence targets are read at every step)."""
        return LOSS_AT_TEXT["all" if self.task.target == "sequence" else loss_at]

    def rebuild_config(self) -> dict:
        """What rebuilds this problem: {"model", "task", "hidden", "layers", "nonlinearity", "dtype"}."""
        model = self.model
        return {"model": model.kind, "task": self.task.name, "hidden": model.hidden_size, "layers": model.num_layers,
                "nonlinearity": model.architecture.options().get("nonlinearity", "tanh"),
                "dtype": str(self.readout.weight.dtype).replace("torch.", "")}

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, T] symbols or [B, T, D] values → the model's input [T, B, I] (time-major)."""
        if self.embedding is not None:
            return self.embedding(x.long()).transpose(0, 1)
        return x.transpose(0, 1).to(self.readout.weight.dtype)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`encode` without gradient, contiguous: the fixed input of an analysis."""
        with torch.no_grad():
            return self.encode(x).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, T] or [B, T, D] → the top layer's output [T, B, H]."""
        return self.model(self.encode(x))[0]

    def loss_of(self, output: torch.Tensor, y: torch.Tensor, t0: int, length: int, loss_at: str = "last",
                reduction: str = "sum") -> torch.Tensor:
        """The loss carried by steps t0 … t0+S−1 of a length-``length`` sequence.

        output: [S, B, H], the top layer's h_t at those steps. y: [B] (class, value) or [B, T]
        (sequence). The loss is a sum over steps, so the segments' losses add up to the whole.
        """
        if loss_at not in LOSS_AT:
            raise ValueError(f"loss_at must be one of {LOSS_AT}, got {loss_at!r}")
        S = output.shape[0]
        if self.task.target != "sequence" and loss_at == "last":
            if t0 + S < length:
                return output.new_zeros(())
            output = output[-1:]
        logits = self.readout(output)  # [S', B, O]
        if self.task.target == "value":
            return F.mse_loss(logits[..., 0], y.to(logits.dtype).expand(logits.shape[0], -1), reduction=reduction)
        if self.task.target == "sequence":
            targets = y[:, t0:t0 + S].transpose(0, 1)
        else:
            targets = y.expand(logits.shape[0], -1)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction=reduction)

    def loss_fn(self, y: torch.Tensor, loss_at: str = "last",
                reduction: str = "sum") -> Callable[[torch.Tensor], torch.Tensor]:
        """The loss as a function of the model's whole output [T, B, H]."""
        if loss_at not in LOSS_AT:
            raise ValueError(f"loss_at must be one of {LOSS_AT}, got {loss_at!r}")
        return lambda output: self.loss_of(output, y, 0, output.shape[0], loss_at, reduction)

    def input_fn(self, x: torch.Tensor):
        """For the checkpointed driver: (t0, t1) → the model input of steps t0..t1−1, [S, B, I]."""
        return lambda t0, t1: self.embed(x[:, t0:t1])

    def explicit_fn(self, y: torch.Tensor, loss_at: str, length: int):
        """For the checkpointed driver: (t0, t1, output) → ∂L/∂output for those steps.

        Returns the function and a callable giving the loss accumulated over the calls.
        """
        total = [0.0]

        def explicit(t0: int, t1: int, output: torch.Tensor) -> torch.Tensor:
            with torch.enable_grad():
                leaf = output.detach().requires_grad_(True)
                loss = self.loss_of(leaf, y, t0, length, loss_at)
                if not loss.requires_grad:  # no target in this segment
                    return torch.zeros_like(output)
                (grad,) = torch.autograd.grad(loss, leaf)
            total[0] += float(loss.detach())
            return grad

        return explicit, lambda: total[0]


def build_problem(kind: str, hidden: int, layers: int, seed: int, dtype: torch.dtype = torch.float32,
                  device: str = "cpu", nonlinearity: str = "tanh", task: Optional[Task] = None) -> SequenceProblem:
    """The problem around a fresh ``kind`` model, initialised from ``seed`` (digit-sum by default)."""
    torch.manual_seed(seed)
    problem = SequenceProblem(kind, hidden, layers, nonlinearity, task or digit_sum.TASK)
    return problem.to(device=device, dtype=dtype)
