"""``gradlab.verify``: bptt() against autograd, quantity by quantity, in float64.

On random problems (random weights, input, initial state, ∂L/∂output and ∂L/∂final state), or on
the models and batch of a saved ``gradlab analyze`` run, with ∂L/∂output taken from that run's loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import torch

from gradlab.common.options import (InvalidOption, check_options, choice_list, int_at_least, option, path_text,
                                    positive_float, seed_value)
from gradlab.engine.bptt import bptt
from gradlab.engine.reference import autograd_reference, compare
from gradlab.models.architectures import NONLINEARITIES
from gradlab.models.recurrent import MODEL_CLASSES, RecurrentModel, build_model, takes_nonlinearity
from gradlab.tasks.weights import load_problems

#: The files of an analyze run that a re-check reads (written by gradlab.runs.analysis_run).
RUN_MODELS, RUN_BATCH = "models.pt", "batch.pt"


@dataclass(frozen=True)
class VerifyConfig:
    run_dir: Optional[str] = option(None, "a directory written by gradlab analyze: re-check its models on its batch",
                                    parse=path_text, metavar="RUN_DIR", positional=True)
    models: Optional[tuple[str, ...]] = option(
        None, "the models to check, or a comma list", flag="--model",
        parse=choice_list(tuple(MODEL_CLASSES) + ("all",), "srn,gru"), metavar="srn|lstm|gru|all",
        default_text="all; with RUN_DIR: the run's models")
    length: int = option(20, "sequence length of the random problems", flag="--len", parse=int_at_least(1), metavar="N")
    layers: int = option(2, "stacked layers of the random problems", parse=int_at_least(1), metavar="K")
    hidden: int = option(8, "hidden units of the random problems", parse=int_at_least(1), metavar="H")
    batch: int = option(3, "batch size of the random problems", parse=int_at_least(1), metavar="B")
    seed: int = option(0, "seed of the random problems", parse=seed_value, metavar="S")
    bidirectional: bool = option(False, "random problems with bidirectional layers")
    tol: float = option(1e-10, "largest relative error accepted", parse=positive_float, metavar="REL")

    def __post_init__(self) -> None:
        check_options(self)
        if self.models is not None and "all" in self.models:
            if len(self.models) > 1:
                raise InvalidOption("'all' cannot be combined with other models", "models")
            object.__setattr__(self, "models", None)  # all


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
    L, H, n = model.num_layers * model.num_directions, model.hidden_size, len(model.state_names)
    x = torch.randn(length, batch, model.input_size, **kw)
    grad_output = torch.randn(length, batch, model.num_directions * H, **kw)
    state = tuple(0.5 * torch.randn(L, batch, H, **kw) for _ in range(n))
    grad_state = tuple(torch.randn(L, batch, H, **kw) for _ in range(n))
    unpack = (lambda s: s[0]) if n == 1 else (lambda s: s)
    return x, grad_output, unpack(state), unpack(grad_state)


def variants(kind: str) -> list[tuple[str, dict]]:
    """(label, constructor options) of every variant of ``kind`` checked: each nonlinearity of the SRN."""
    if takes_nonlinearity(kind):
        return [(f"{kind} ({nl})", {"nonlinearity": nl}) for nl in NONLINEARITIES]
    return [(kind, {})]


def check_random(cfg: VerifyConfig) -> Iterator[Check]:
    gen = torch.Generator().manual_seed(cfg.seed)
    for kind in cfg.models or tuple(MODEL_CLASSES):
        for label, options in variants(kind):
            torch.manual_seed(cfg.seed)
            model = build_model(kind, 3, cfg.hidden, cfg.layers, dtype=torch.float64, bidirectional=cfg.bidirectional,
                                **options)
            label += ", bidirectional" if cfg.bidirectional else ""
            args = random_problem(model, cfg.length, cfg.batch, gen)
            yield Check(label, compare(bptt(model, *args), autograd_reference(model, *args)))


def check_run(cfg: VerifyConfig) -> Iterator[Check]:
    """Re-check a saved analyze run: its models (in float64) on its batch and its loss."""
    run_dir = Path(cfg.run_dir)
    missing = [f for f in (RUN_MODELS, RUN_BATCH) if not (run_dir / f).is_file()]
    if missing:
        raise InvalidOption(f"{str(run_dir)!r} is not a gradlab analyze run (missing {', '.join(missing)})", "run_dir")
    try:
        problems = load_problems(run_dir / RUN_MODELS, dtype=torch.float64)
    except (OSError, ValueError) as exc:
        raise InvalidOption(str(exc), "run_dir") from None
    try:
        batch = torch.load(run_dir / RUN_BATCH, map_location="cpu", weights_only=True)
        inputs, targets, loss_at = batch["inputs"], batch["targets"], batch["config"]["loss_at"]
    except Exception as exc:  # torch raises many kinds for a damaged file
        raise InvalidOption(f"{run_dir / RUN_BATCH}: not a readable batch file ({type(exc).__name__})", "run_dir") from None
    drawn_for = tuple(batch["config"].get("models", ()))
    if drawn_for and set(drawn_for) != set(problems):
        raise InvalidOption(f"{RUN_MODELS} holds {', '.join(problems)} but {RUN_BATCH} was drawn for "
                            f"{', '.join(drawn_for)}: the two files come from different runs", "run_dir")
    chosen = cfg.models or tuple(problems)
    absent = [m for m in chosen if m not in problems]
    if absent:
        raise InvalidOption(f"the run has {', '.join(problems)}, not {', '.join(absent)}", "models")
    for kind in chosen:
        problem = problems[kind]
        x = problem.embed(inputs)
        with torch.enable_grad():
            output = problem.model(x)[0].detach().requires_grad_(True)
            loss = problem.loss_fn(targets, loss_at)(output)
            (grad_output,) = torch.autograd.grad(loss, output)
        yield Check(f"{kind} (run {run_dir.name})",
                    compare(bptt(problem.model, x, grad_output), autograd_reference(problem.model, x, grad_output)))


def verify(cfg: VerifyConfig) -> list[Check]:
    """Every check ``cfg`` asks for: on its run directory if it names one, else on random problems."""
    return list(check_run(cfg) if cfg.run_dir is not None else check_random(cfg))


def format_check(check: Check, tolerance: float) -> str:
    width = max(len(r[0]) for r in check.rows)
    lines = [f"{check.label}", f"  {'quantity'.ljust(width)}  {'max abs error':>13}  {'rel. error':>10}"]
    for name, err, rel in check.rows:
        mark = "" if rel <= tolerance else "  FAIL"
        lines.append(f"  {name.ljust(width)}  {err:>13.2e}  {rel:>10.2e}{mark}")
    return "\n".join(lines)

