"""``gradlab analyze``: one task batch per model → Trace → profiles, fits, horizons, theory.

The models are fresh (at initialisation) or, with ``checkpoint``, the trained model a
``gradlab train`` run saved, analysed on a batch of its own task.

This module computes; gradlab/run_files.py writes the run directory; the CLI only parses flags
and calls both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from gradlab.engine.checkpointed import checkpointed_norms
from gradlab.models.regimes import initialise
from gradlab.analysis.metrics import DecayFit, DecayProfile, Horizon, decay_profile, fit_decay, horizon
from gradlab.analysis.predictions import LYAPUNOV_STEPS, predictions
from gradlab.tasks.problem import SequenceProblem, build_problem
from gradlab.tasks import TASKS
from gradlab.engine.trace import Trace


@dataclass(frozen=True)
class AnalyzeConfig:
    models: tuple[str, ...] = ("lstm",)
    length: int = 100
    hidden: int = 32
    layers: int = 1
    batch: int = 32
    seed: int = 0
    loss_at: str = "last"
    dtype: str = "float32"
    device: str = "cpu"
    out: str = "runs"
    init: str = "default"
    gain: Optional[float] = None
    forget_bias: Optional[float] = None
    nonlinearity: str = "tanh"
    zero_input: bool = False
    task: str = "digit-sum"
    checkpoint: Optional[str] = None  # a gradlab train checkpoint: analyse the trained model
    data_dir: Optional[str] = None  # for tasks read from files (mnist-rows)


@dataclass
class ModelResult:
    """One model's trace and what was read off its top layer."""

    kind: str
    problem: SequenceProblem
    trace: Trace
    profiles: dict[str, DecayProfile] = field(default_factory=dict)
    fits: dict[str, DecayFit] = field(default_factory=dict)
    horizons: dict[str, Horizon] = field(default_factory=dict)
    forward_overflow_step: Optional[int] = None  # set when the forward pass itself overflowed
    predictions: dict[str, dict] = field(default_factory=dict)  # gradlab.analysis.predictions
    forget_log10: Optional[np.ndarray] = None  # [T] mean log10 f_t along the trajectory (LSTM)


@dataclass
class Analysis:
    config: AnalyzeConfig
    inputs: np.ndarray  # [B, T] symbols or [B, T, D] values
    targets: np.ndarray  # [B] or [B, T]
    results: list[ModelResult]


def analyze(cfg: AnalyzeConfig, progress: bool = True) -> Analysis:
    """Record every model of ``cfg`` on one batch of its task drawn from ``cfg.seed``."""
    dtype = getattr(torch, cfg.dtype)
    digits, labels = analysis_batch(cfg)
    digits_t = torch.as_tensor(digits, device=cfg.device)
    labels_t = torch.as_tensor(labels, device=cfg.device)
    results = []
    for kind in tqdm(cfg.models, desc="models", unit="model", disable=not progress or len(cfg.models) == 1):
        problem = make_problem(kind, cfg).to(dtype)
        forget = np.zeros(cfg.length) if kind == "lstm" else None
        trace, overflow = record_checkpointed(problem, digits_t, labels_t, cfg, progress, forget)
        result = ModelResult(kind, problem, trace, forward_overflow_step=overflow, forget_log10=forget)
        results.append(result)
        if overflow is not None:
            continue
        prefix = _inputs(problem, digits_t, cfg)(0, min(cfg.length, LYAPUNOV_STEPS))
        result.predictions = predictions(problem.model, prefix, forget)
        for name in trace.names:
            prof = decay_profile(trace.log10_grad_norms(name), trace.grad_norms(name))
            result.profiles[name] = prof
            result.fits[name] = fit_decay(prof)
            result.horizons[name] = horizon(prof)
    return Analysis(cfg, digits, labels, results)


def analysis_batch(cfg: AnalyzeConfig) -> tuple[np.ndarray, np.ndarray]:
    """``cfg.batch`` examples of the task at ``cfg.length`` from ``cfg.seed`` (tasks on fixed data:
    the first ones of the test set)."""
    task = TASKS[cfg.task]
    task.check_length(cfg.length)
    if task.make is not None:
        return task.make(cfg.length, cfg.batch, np.random.default_rng(cfg.seed))
    x, y = task.load(cfg.data_dir, cfg.seed)["test"]
    return x[:cfg.batch], y[:cfg.batch]


def make_problem(kind: str, cfg: AnalyzeConfig) -> SequenceProblem:
    """The trained problem of ``cfg.checkpoint``, or a fresh one initialised as ``cfg`` says."""
    if cfg.checkpoint is not None:
        from gradlab.tasks.weights import load_checkpoint

        return load_checkpoint(cfg.checkpoint, cfg.device)[0]
    problem = build_problem(kind, cfg.hidden, cfg.layers, cfg.seed, getattr(torch, cfg.dtype), cfg.device,
                            nonlinearity=cfg.nonlinearity, task=TASKS[cfg.task])
    initialise(problem.model, cfg.init, cfg.gain, cfg.forget_bias if kind == "lstm" else None, cfg.seed)
    return problem


def record_checkpointed(problem: SequenceProblem, digits: torch.Tensor, labels: torch.Tensor,
                        cfg: AnalyzeConfig, progress: bool,
                        forget_log10: Optional[np.ndarray] = None) -> tuple[Trace, Optional[int]]:
    """The Trace of one problem from the checkpointed log-domain backward pass (any length), and
    the step at which the forward pass overflowed (None if it did not). For an LSTM, the mean
    log10 forget gate of the top layer at every step is written into ``forget_log10`` [T]."""
    explicit, loss = problem.explicit_fn(labels, cfg.loss_at, cfg.length)
    H = cfg.hidden

    def keep_forget_gates(t0: int, t1: int, tapes: list) -> None:
        forget_log10[t0:t1] = tapes[-1].gates[:, :, H:2 * H].log10().mean(dim=(1, 2)).cpu().numpy()

    streamed = checkpointed_norms(problem.model, _inputs(problem, digits, cfg), explicit, cfg.length, cfg.batch,
                                  progress=progress, on_forward=None if forget_log10 is None else keep_forget_gates)
    with np.errstate(under="ignore"):
        explicit_norms = [10.0 ** e for e in streamed.explicit_log10]
    return Trace(model_kind=problem.model.kind, loss=loss(), norms=streamed.plain, explicit_norms=explicit_norms,
                 log10_norms=streamed.log10,
                 meta={"num_steps": cfg.length, "batch": cfg.batch, "hidden": cfg.hidden, "dtype": cfg.dtype,
                       "device": cfg.device, "engine": "checkpointed log-domain BPTT"}), streamed.forward_overflow_step


def _inputs(problem: SequenceProblem, digits: torch.Tensor, cfg: AnalyzeConfig):
    inputs = problem.input_fn(digits)
    if cfg.zero_input:
        return lambda t0, t1: torch.zeros_like(inputs(t0, t1))
    return inputs
