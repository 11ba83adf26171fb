"""``gradlab analyze``: record one digit-sum batch per model and write the run directory.

The work is split in two: :func:`analyze` computes (problem → Trace → profiles, fits, horizons)
and :func:`write_run` writes the files; the CLI only parses flags and calls both.
"""

from __future__ import annotations

import csv
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from gradlab.metrics import DecayFit, DecayProfile, Horizon, decay_profile, fit_decay, horizon
from gradlab.plots.decay import decay_figure
from gradlab.predictions import LYAPUNOV_STEPS, forget_gate_curve, predictions
from gradlab.plots.style import save_figure
from gradlab.problem import LOSS_AT_TEXT, DigitSumClassifier, build_problem
from gradlab.checkpointed import checkpointed_norms
from gradlab.init import initialise
from gradlab.runs import RunDir, fresh_run_dir, write_json
from gradlab.tasks.digit_sum import sample_batch
from gradlab.trace import Trace


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


@dataclass
class ModelResult:
    """One model's trace and what was read off its top layer."""

    kind: str
    problem: DigitSumClassifier
    trace: Trace
    profiles: dict[str, DecayProfile] = field(default_factory=dict)
    fits: dict[str, DecayFit] = field(default_factory=dict)
    horizons: dict[str, Horizon] = field(default_factory=dict)
    forward_overflow_step: Optional[int] = None  # set when the forward pass itself overflowed
    predictions: dict[str, dict] = field(default_factory=dict)  # gradlab.predictions
    forget_log10: Optional[np.ndarray] = None  # [T] mean log10 f_t along the trajectory (LSTM)


@dataclass
class Analysis:
    config: AnalyzeConfig
    digits: np.ndarray  # [B, T]
    labels: np.ndarray  # [B]
    results: list[ModelResult]


def analyze(cfg: AnalyzeConfig, progress: bool = True) -> Analysis:
    """Record every model of ``cfg`` on one digit-sum batch drawn from ``cfg.seed``."""
    dtype = getattr(torch, cfg.dtype)
    digits, labels = sample_batch(cfg.length, cfg.batch, np.random.default_rng(cfg.seed))
    digits_t = torch.as_tensor(digits, device=cfg.device)
    labels_t = torch.as_tensor(labels, device=cfg.device)
    results = []
    for kind in tqdm(cfg.models, desc="models", unit="model", disable=not progress or len(cfg.models) == 1):
        problem = build_problem(kind, cfg.hidden, cfg.layers, cfg.seed, dtype, cfg.device,
                                nonlinearity=cfg.nonlinearity)
        initialise(problem.model, cfg.init, cfg.gain, cfg.forget_bias if kind == "lstm" else None, cfg.seed)
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


def record_checkpointed(problem: DigitSumClassifier, digits: torch.Tensor, labels: torch.Tensor,
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


def _inputs(problem: DigitSumClassifier, digits: torch.Tensor, cfg: AnalyzeConfig):
    inputs = problem.input_fn(digits)
    if cfg.zero_input:
        return lambda t0, t1: torch.zeros_like(inputs(t0, t1))
    return inputs


# -- files ---------------------------------------------------------------------------------------

CSV_COLUMNS = ["model", "t", "distance",
               "grad_h", "status_h", "log10_grad_h", "log10_grad_h_p10", "log10_grad_h_p90",
               "grad_c", "status_c", "log10_grad_c", "log10_grad_c_p10", "log10_grad_c_p90",
               "explicit_h"]


def _csv_rows(analysis: Analysis):
    for res in analysis.results:
        T = res.trace.num_steps
        if res.forward_overflow_step is not None:  # no gradient is defined
            for k in range(T):
                row = dict.fromkeys(CSV_COLUMNS, "")
                row.update(model=res.kind, t=T - 1 - k, distance=k, status_h="forward overflow")
                if "c" in res.trace.names:
                    row["status_c"] = "forward overflow"
                yield row
            continue
        explicit = res.trace.explicit_grad_norms().mean(axis=1)
        for k in range(T):
            row = {"model": res.kind, "t": T - 1 - k, "distance": k, "explicit_h": repr(float(explicit[T - 1 - k]))}
            for s in ("h", "c"):
                prof = res.profiles.get(s)
                row[f"grad_{s}"] = repr(float(prof.mean[k])) if prof else ""
                row[f"status_{s}"] = prof.status[k] if prof else ""
                row[f"log10_grad_{s}"] = repr(float(prof.log10_mean[k])) if prof else ""
                row[f"log10_grad_{s}_p10"] = repr(float(prof.log10_lo[k])) if prof else ""
                row[f"log10_grad_{s}_p90"] = repr(float(prof.log10_hi[k])) if prof else ""
            yield row


def write_trace_csv(path: Path, analysis: Analysis) -> None:
    """One row per model and step, time in backward order (distance 0 first)."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(_csv_rows(analysis))


SUMMARY_DISTANCES = (0, 1, 10, 50, 100, 200, 500, 1000, 10_000, 100_000, 1_000_000)


def summary(analysis: Analysis) -> dict:
    """Everything needed to read and reproduce the run, as plain JSON-ready data."""
    cfg = analysis.config
    models = {}
    for res in analysis.results:
        per_state = {}
        for s, prof in res.profiles.items():
            ks = [k for k in SUMMARY_DISTANCES if k < len(prof.mean)]
            per_state[s] = {
                "norm_at_distance": {str(k): {"mean": float(prof.mean[k]), "status": str(prof.status[k]),
                                              "log10_mean": float(prof.log10_mean[k])} for k in ks},
                "decay_factor_per_step": asdict(res.fits[s]),
                "horizon": asdict(res.horizons[s]),
                "steps_underflowed": int(np.sum(prof.mean == 0)),
                "steps_overflowed": int(np.sum(~np.isfinite(prof.mean))),
            }
        measured = {f"fitted_{s}": res.fits[s].factor for s in res.fits}
        models[res.kind] = {"loss": res.trace.loss, "loss_is_finite": bool(np.isfinite(res.trace.loss)),
                            "forward_overflow_step": res.forward_overflow_step, "gradients": per_state,
                            "decay_factor_per_step": {**measured, **{f"predicted_by_{name}": p["factor_per_step"]
                                                                     for name, p in res.predictions.items()}},
                            "theory": res.predictions}
    return {
        "command": "gradlab analyze",
        "config": asdict(cfg),
        "problem": {
            "task": "NNDL digit-sum (random n1, n2; one noise digit)",
            "model": "Embedding(10, 32) -> {model} -> Linear(hidden, 19), at initialisation (torch's default init)",
            "loss": f"cross-entropy summed over the batch, on {LOSS_AT_TEXT[cfg.loss_at]}",
            "norms": "per-sample L2 norm over hidden units of the total dL/dh_t (dL/dc_t); 'mean' is the batch mean "
                     "of the norms as the run's dtype holds them (0.0 = underflow, inf = overflow); 'log10_mean' is "
                     "log10 of the batch mean of the true norms, from the log-domain backward pass",
            "engine": "hand-derived BPTT in the log domain, checkpointed every ~sqrt(T) steps",
            "distance": "k = t_loss - t, with t_loss the last step",
            "fit": "least squares of log10_mean against distance over the fitted range; factor = 10^slope",
        },
        "versions": {"gradlab": _gradlab_version(), "torch": torch.__version__, "numpy": np.__version__,
                     "python": sys.version.split()[0], "platform": platform.platform()},
        "models": models,
    }


def _gradlab_version() -> str:
    from gradlab import __version__

    return __version__


def write_run(analysis: Analysis, out: Optional[Path] = None) -> Path:
    """Write the run directory; returns its final path."""
    cfg = analysis.config
    stem = f"{'-'.join(cfg.models)}_len{cfg.length}"
    with fresh_run_dir(Path(out or cfg.out), stem) as run:
        _write_files(run, analysis)
    return run.final


def _write_files(run: RunDir, analysis: Analysis) -> None:
    d = run.staging
    write_trace_csv(d / "trace.csv", analysis)
    write_json(d / "summary.json", summary(analysis))
    torch.save({res.kind: res.problem.state_dict() for res in analysis.results}, d / "models.pt")
    torch.save({"digits": torch.as_tensor(analysis.digits, dtype=torch.uint8),  # 0..9; .long() to use
                "labels": torch.as_tensor(analysis.labels),
                "config": asdict(analysis.config)}, d / "batch.pt")
    cfg = analysis.config
    title = (f"digit-sum, T = {cfg.length}, {cfg.layers} layer(s), H = {cfg.hidden}, {cfg.dtype}, "
             f"loss on {LOSS_AT_TEXT[cfg.loss_at]}, at initialisation")
    shown = [r for r in analysis.results if r.profiles]
    if not shown:  # every forward pass overflowed: there is no gradient to draw
        return
    fig = decay_figure({r.kind: r.profiles for r in shown}, {r.kind: r.fits for r in shown}, title=title,
                       dtype=cfg.dtype, predicted={r.kind: predicted_lines(r) for r in shown})
    save_figure(fig, d / "decay")


def predicted_lines(res: ModelResult) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Per state, (label, log10 values against distance) of each prediction, anchored at the
    measured value at distance 0."""
    lines: dict[str, list] = {}
    for s, prof in res.profiles.items():
        k, start = prof.distance.astype(float), prof.log10_mean[0]
        for name, label in (("lyapunov", "Lyapunov"), ("pascanu_bound", "Pascanu bound")):
            if name in res.predictions and (s == "h" or name == "lyapunov"):
                slope = res.predictions[name]["log10_per_step"]
                lines.setdefault(s, []).append((f"{label} ×{10 ** slope:.3g}", start + slope * k))
        if s == "c" and res.forget_log10 is not None:
            lines.setdefault(s, []).append(
                (f"∏ forget gates ×{res.predictions['forget_gates']['factor_per_step']:.3g}",
                 forget_gate_curve(res.forget_log10, start)[: len(k)]))
    return lines
