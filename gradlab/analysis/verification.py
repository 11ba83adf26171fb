"""``gradlab verify``: bptt() against autograd, quantity by quantity, in float64.

On random problems (random weights, input, initial state, ∂L/∂output and ∂L/∂final state), or on
the models and batch of a saved ``gradlab analyze`` run, with ∂L/∂output taken from that run's loss.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from gradlab.engine.reference import autograd_reference, compare
from gradlab.engine.bptt import bptt
from gradlab.models.recurrent import GRU, LSTM, SRN, RecurrentModel

#: The default tolerance on the relative error ‖a − b‖∞ / ‖b‖∞ of every quantity, in float64.
DEFAULT_TOLERANCE = 1e-10
MODEL_VARIANTS = {
    "srn": [("srn (tanh)", SRN, {"nonlinearity": "tanh"}), ("srn (relu)", SRN, {"nonlinearity": "relu"}),
            ("srn (linear)", SRN, {"nonlinearity": "linear"})],
    "lstm": [("lstm", LSTM, {})],
    "gru": [("gru", GRU, {})],
}


@dataclass
class Check:
    """One model's comparison: rows of (quantity, max abs error, relative error)."""

    label: str
    rows: list[tuple[str, float, float]]

    def worst(self) -> float:
        return max(r[2] for r in self.rows)


def random_problem(model: RecurrentModel, length: int, batch: int, gen: torch.Generator):
    """Random x, initial state, ∂L/∂output and ∂L/∂final state for ``model`` (time-major)."""
    kw = {"dtype": torch.float64, "generator": gen}
    L, H = model.num_layers, model.hidden_size
    x = torch.randn(length, batch, model.input_size, **kw)
    grad_output = torch.randn(length, batch, H, **kw)
    n = len(model.state_names)
    state = tuple(0.5 * torch.randn(L, batch, H, **kw) for _ in range(n))
    grad_state = tuple(torch.randn(L, batch, H, **kw) for _ in range(n))
    unpack = (lambda s: s[0]) if n == 1 else (lambda s: s)
    return x, grad_output, unpack(state), unpack(grad_state)


def check_random(models: list[str], length: int, layers: int, hidden: int, batch: int, seed: int) -> Iterator[Check]:
    gen = torch.Generator().manual_seed(seed)
    for kind in models:
        for label, cls, kwargs in MODEL_VARIANTS[kind]:
            torch.manual_seed(seed)
            model = cls(3, hidden, num_layers=layers, dtype=torch.float64, **kwargs)
            args = random_problem(model, length, batch, gen)
            yield Check(label, compare(bptt(model, *args), autograd_reference(model, *args)))


def check_run(run_dir: Path) -> Iterator[Check]:
    """Re-check a saved analyze run: its models (in float64) on its batch and its loss."""
    from gradlab.tasks.problem import build_problem
    from gradlab.tasks import TASKS

    config = json.loads((run_dir / "summary.json").read_text())["config"]
    states = torch.load(run_dir / "models.pt")
    batch = torch.load(run_dir / "batch.pt")
    for kind in config["models"]:
        problem = build_problem(kind, config["hidden"], config["layers"], seed=0, dtype=torch.float64,
                                nonlinearity=config["nonlinearity"], task=TASKS[config["task"]])
        problem.load_state_dict(states[kind])
        x = problem.embed(batch["inputs"])
        model = problem.model
        with torch.enable_grad():
            output = model(x)[0].detach().requires_grad_(True)
            loss = problem.loss_fn(batch["targets"], config["loss_at"])(output)
            (grad_output,) = torch.autograd.grad(loss, output)
        yield Check(f"{kind} (run {run_dir.name})",
                    compare(bptt(model, x, grad_output), autograd_reference(model, x, grad_output)))


def format_check(check: Check, tolerance: float) -> str:
    width = max(len(r[0]) for r in check.rows)
    lines = [f"{check.label}", f"  {'quantity'.ljust(width)}  {'max abs error':>13}  {'rel. error':>10}"]
    for name, err, rel in check.rows:
        mark = "" if rel <= tolerance else "  FAIL"
        lines.append(f"  {name.ljust(width)}  {err:>13.2e}  {rel:>10.2e}{mark}")
    return "\n".join(lines)
