"""``gradlab.analyze``: one task batch per model → Trace → profiles, fits, horizons, theory.

The models are fresh (at initialisation) or, with ``checkpoint``, the trained model a
``gradlab.train`` run saved, analysed on a batch of its own task. :class:`AnalyzeConfig` declares
every option once (``gradlab analyze``'s flags are built from it) and :meth:`AnalyzeConfig.resolved`
fills what was left open — from the checkpoint when there is one — so Python and the command line
run the same thing. Writing the run directory is ``gradlab.runs``'s job.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from gradlab.analysis.metrics import DecayFit, DecayProfile, Horizon, decay_profile, fit_decay, horizon
from gradlab.analysis.predictions import LYAPUNOV_STEPS, predictions
from gradlab.common.options import (InvalidOption, check_options, choice, choice_list, device_option, finite_float,
                                    int_at_least, option, path_text, positive_float, seed_value)
from gradlab.analysis.footprint import analysis_bytes, refuse_beyond_memory
from gradlab.engine.checkpointed import checkpointed_norms
from gradlab.engine.trace import Trace
from gradlab.models.architectures import ARCHITECTURES, NONLINEARITIES
from gradlab.models.recurrent import MODEL_CLASSES, takes_nonlinearity
from gradlab.models.regimes import INITS, initialise
from gradlab.tasks import TASKS
from gradlab.tasks.problem import LOSS_AT, SequenceProblem, build_problem
from gradlab.tasks.weights import load_checkpoint

DEFAULT_LENGTH = 100
REGIMES = "regimes: initialisations that make gradients vanish, stay or explode"
#: Regimes that re-initialise weights, which a trained model's cannot take (with their defaults).
NOT_FOR_TRAINED = {"init": "default", "gain": None, "forget_bias": None}


@dataclass(frozen=True)
class AnalyzeConfig:
    """What ``gradlab analyze`` analyses. Fields left None are resolved by :meth:`resolved`."""

    models: Optional[tuple[str, ...]] = option(
        None, "model, or a comma list compared in one run and one figure", flag="--model",
        parse=choice_list(tuple(MODEL_CLASSES), "srn,lstm,gru"), metavar="srn|lstm|gru", default_text="lstm")
    length: Optional[int] = option(None, "sequence length", flag="--len", parse=int_at_least(1), metavar="N",
                                   default_text=f"{DEFAULT_LENGTH}; image tasks: their height; with --checkpoint "
                                                "the length it was trained on")
    hidden: Optional[int] = option(None, "hidden units", parse=int_at_least(1), metavar="H", default_text="32")
    layers: Optional[int] = option(None, "stacked layers", parse=int_at_least(1), metavar="K", default_text="1")
    task: Optional[str] = option(None, "the task whose batch is analysed", parse=choice(tuple(TASKS)),
                                 metavar="|".join(TASKS), default_text="digit-sum")
    checkpoint: Optional[str] = option(None, "analyse the trained model of a 'gradlab train' run (its checkpoint.pt) "
                                             "on its task", parse=path_text, metavar="PATH")
    data_dir: Optional[str] = option(None, "where tasks read from files find them (mnist-rows: the idx files)",
                                     flag="--data", parse=path_text, metavar="DIR")
    batch: int = option(32, "batch size", parse=int_at_least(1), metavar="B")
    seed: int = option(0, "seed for data and weights", parse=seed_value, metavar="S")
    loss_at: str = option("last", "the loss reads the last step or every step", parse=choice(LOSS_AT),
                          metavar="|".join(LOSS_AT))
    dtype: str = option("float32", "floating-point type of the run", parse=choice(("float32", "float64")),
                        metavar="float32|float64")
    device: str = device_option()
    out: str = option("runs", "where the run directory is created; earlier runs are never overwritten",
                      parse=path_text, metavar="DIR")
    init: str = option("default", "shape of every H×H block of W_hh: torch's default, orthogonal, identity (IRNN, "
                                  "biases 0) or normal N(0, 1/H); or nndl, the NNDL book's Xavier-uniform weights "
                                  "and single bias", parse=choice(INITS), metavar="|".join(INITS), group=REGIMES)
    gain: Optional[float] = option(None, "rescale every block of W_hh to spectral radius G", parse=positive_float,
                                   metavar="G", group=REGIMES)
    forget_bias: Optional[float] = option(None, "the LSTM's total forget-gate bias (LSTMs only)", parse=finite_float,
                                          metavar="B", group=REGIMES)
    nonlinearity: Optional[str] = option(None, "the SRN's nonlinearity", parse=choice(NONLINEARITIES),
                                         metavar="|".join(NONLINEARITIES), group=REGIMES, default_text="tanh")
    zero_input: bool = option(False, "feed zeros instead of the task's inputs", group=REGIMES)

    def __post_init__(self) -> None:
        check_options(self)

    def resolved(self) -> "AnalyzeConfig":
        """Every field filled: from the checkpoint when there is one (the fields it fixes must be left
        out or agree with it), else the defaults; checked against the task. Resolving a resolved
        config changes nothing. Raises InvalidOption naming the field."""
        cfg = self
        if cfg.checkpoint is not None:
            try:
                _, trained, _ = load_checkpoint(cfg.checkpoint)
            except (OSError, ValueError) as exc:
                raise InvalidOption(str(exc), "checkpoint") from None
            fixed = {"models": (trained["model"],), "hidden": trained["hidden"], "layers": trained["layers"],
                     "task": trained["task"], "nonlinearity": trained["nonlinearity"]}
            given = [name for name, value in fixed.items() if getattr(cfg, name) not in (None, value)]
            given += [name for name, unset in NOT_FOR_TRAINED.items() if getattr(cfg, name) != unset]
            if given:
                raise InvalidOption(f"{', '.join(given)} come(s) from the checkpoint; leave them out", "checkpoint")
            cfg = replace(cfg, **fixed, length=cfg.length or trained["length"],
                          data_dir=cfg.data_dir or trained.get("data_dir"))
        task = TASKS[cfg.task or "digit-sum"]
        if self.data_dir is not None and task.load is None:  # given by the user for a generated task
            raise InvalidOption(f"{task.name} is generated from --seed, not read from files (--data is for "
                                f"{', '.join(t.name for t in TASKS.values() if t.load is not None)})", "data_dir")
        cfg = replace(cfg, models=cfg.models or ("lstm",), hidden=cfg.hidden or 32, layers=cfg.layers or 1,
                      task=task.name, nonlinearity=cfg.nonlinearity or "tanh",
                      length=cfg.length or task.fixed_length or DEFAULT_LENGTH)
        try:
            task.check_length(cfg.length)
        except ValueError as exc:
            raise InvalidOption(str(exc), "length") from None
        if cfg.forget_bias is not None and not any(ARCHITECTURES[m].forget_gate is not None for m in cfg.models):
            raise InvalidOption("applies to the LSTM only; add lstm to the models", "forget_bias")
        if cfg.nonlinearity != "tanh" and not any(takes_nonlinearity(m) for m in cfg.models):
            raise InvalidOption("applies to the SRN only; add srn to the models", "nonlinearity")
        itemsize = 8 if cfg.dtype == "float64" else 4
        refuse_beyond_memory(analysis_bytes(cfg.length, cfg.batch, cfg.hidden, cfg.layers, itemsize))
        return cfg


@dataclass
class ModelResult:
    """One model's trace and what was read off its top layer."""

    kind: str
    problem: SequenceProblem
    trace: Trace
    profiles: dict[str, DecayProfile] = field(default_factory=dict)
    fits: dict[str, DecayFit] = field(default_factory=dict)
    horizons: dict[str, Horizon] = field(default_factory=dict)
    predictions: dict[str, dict] = field(default_factory=dict)  # gradlab.analysis.predictions
    forget_log10: Optional[np.ndarray] = None  # [T] mean log10 f_t along the trajectory (LSTM)

    @property
    def forward_overflow_step(self) -> Optional[int]:
        """The step at which the forward pass overflowed (no gradient is defined), or None."""
        return self.trace.forward_overflow_step


@dataclass
class Analysis:
    config: AnalyzeConfig  # resolved
    inputs: np.ndarray  # [B, T] symbols or [B, T, D] values
    targets: np.ndarray  # [B] or [B, T]
    results: list[ModelResult]


def analyze(cfg: AnalyzeConfig, progress: bool = True) -> Analysis:
    """Record every model of ``cfg`` on one batch of its task drawn from ``cfg.seed``."""
    cfg = cfg.resolved()
    dtype = getattr(torch, cfg.dtype)
    inputs, targets = analysis_batch(cfg)
    inputs_t = torch.as_tensor(inputs, device=cfg.device)
    targets_t = torch.as_tensor(targets, device=cfg.device)
    results = []
    for kind in tqdm(cfg.models, desc="models", unit="model", disable=not progress or len(cfg.models) == 1):
        problem = make_problem(kind, cfg).to(dtype)
        result = analyze_problem(problem, inputs_t, targets_t, cfg, progress)
        results.append(result)
    return Analysis(cfg, inputs, targets, results)


def analyze_problem(problem: SequenceProblem, inputs: torch.Tensor, targets: torch.Tensor, cfg: AnalyzeConfig,
                    progress: bool = False) -> ModelResult:
    """The trace of one problem (checkpointed log-domain engine, any length) and what it says."""
    arch = problem.model.architecture
    forget = np.zeros(cfg.length) if arch.forget_gate is not None else None

    def keep_forget_gates(t0: int, t1: int, tapes: list) -> None:
        forget[t0:t1] = arch.forget_gates(tapes[-1]).log10().mean(dim=(1, 2)).cpu().numpy()

    explicit, loss = problem.explicit_fn(targets, cfg.loss_at, cfg.length)
    input_fn = _inputs(problem, inputs, cfg)
    trace = checkpointed_norms(problem.model, input_fn, explicit, cfg.length, inputs.shape[0], progress=progress,
                               on_forward=None if forget is None else keep_forget_gates)
    trace.loss = loss()
    result = ModelResult(problem.model.kind, problem, trace, forget_log10=forget)
    if trace.forward_overflow_step is not None:
        return result
    result.predictions = predictions(problem.model, input_fn(0, min(cfg.length, LYAPUNOV_STEPS)), forget)
    for name in trace.names:
        prof = decay_profile(trace.log10_grad_norms(name), trace.grad_norms(name), smallest_normal=trace.smallest_normal)
        result.profiles[name] = prof
        result.fits[name] = fit_decay(prof)
        result.horizons[name] = horizon(prof)
    return result


def analysis_batch(cfg: AnalyzeConfig) -> tuple[np.ndarray, np.ndarray]:
    """``cfg.batch`` examples of the task at ``cfg.length`` from ``cfg.seed`` (tasks on fixed data:
    the first ones of the test set). ``cfg`` resolved."""
    task = TASKS[cfg.task]
    if task.make is not None:
        return task.make(cfg.length, cfg.batch, np.random.default_rng(cfg.seed))
    x, y = task.load(cfg.data_dir, cfg.seed)["test"]
    return x[:cfg.batch], y[:cfg.batch]


def make_problem(kind: str, cfg: AnalyzeConfig) -> SequenceProblem:
    """The trained problem of ``cfg.checkpoint``, or a fresh one initialised as ``cfg`` (resolved) says."""
    if cfg.checkpoint is not None:
        return load_checkpoint(cfg.checkpoint, cfg.device)[0]
    problem = build_problem(kind, cfg.hidden, cfg.layers, cfg.seed, getattr(torch, cfg.dtype), cfg.device,
                            nonlinearity=cfg.nonlinearity if takes_nonlinearity(kind) else "tanh", task=TASKS[cfg.task])
    has_forget = problem.model.architecture.forget_gate is not None
    initialise(problem.model, cfg.init, cfg.gain, cfg.forget_bias if has_forget else None, cfg.seed)
    return problem


def _inputs(problem: SequenceProblem, inputs: torch.Tensor, cfg: AnalyzeConfig):
    fn = problem.input_fn(inputs)
    if cfg.zero_input:
        return lambda t0, t1: torch.zeros_like(fn(t0, t1))
    return fn
