"""The standard set ``gradlab report`` runs when no run is given: one analyze run of the SRN, LSTM
and GRU — with, beside its usual files, the singular values of the state Jacobians (spectra.json)
and the gradient per hidden unit (units.json) of each model, which only a run that still holds the
models can compute — and an SRN and an LSTM trained on digit-sum with their decay traced."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from gradlab.analysis.jacobians import jacobian_spectra
from gradlab.analysis.pipeline import AnalyzeConfig, Analysis, analyze
from gradlab.common.files import atomic_write, write_json
from gradlab.engine.record import record
from gradlab.runs.analysis_run import write_run
from gradlab.runs.training_run import write_train_run
from gradlab.training.loop import TrainConfig, train

SPECTRA, UNITS = "spectra.json", "units.json"
#: Samples of the batch whose Jacobian spectra are computed (one S×S SVD per step and sample).
SPECTRA_BATCH = 8


def _log10(values: np.ndarray) -> list:
    with np.errstate(divide="ignore"):
        out = np.log10(values)
    return np.where(np.isfinite(out), out, np.nan).tolist()  # NaN (JSON: NaN → "nan") where exactly zero


def write_spectra_and_units(analysis: Analysis, run_dir: Path) -> None:
    """spectra.json: per model, log10 of the largest and smallest singular value of ∂s_{T−1}/∂s_t
    [K][B] by distance, with Lyapunov's log10 factor per step; units.json: per model, log10 of the
    batch-mean |∂L/∂h_t| per hidden unit, [K][H] by distance (top layer). Float64."""
    spectra, units = {}, {}
    for res in analysis.results:
        problem = copy.deepcopy(res.problem).to(torch.float64)
        model = problem.model
        x = problem.embed(torch.as_tensor(analysis.inputs))
        s = jacobian_spectra(model, x[:, :SPECTRA_BATCH])
        lyapunov = (res.predictions.get("lyapunov") or {}).get("log10_per_step")
        spectra[res.kind] = {"log10_largest": _log10(s.largest()), "log10_smallest": _log10(s.smallest()),
                             "lyapunov_log10_per_step": lyapunov}
        trace = record(model, x, problem.loss_fn(torch.as_tensor(analysis.targets), analysis.config.loss_at), full=True)
        per_unit = trace.grad("h").abs().mean(dim=1).flip(0)  # [K, H], row k is distance k
        units[res.kind] = {"log10_mean_abs_grad_h": _log10(per_unit.cpu().numpy())}
    atomic_write(run_dir / SPECTRA, lambda p: write_json(p, spectra))
    atomic_write(run_dir / UNITS, lambda p: write_json(p, units))


def standard_runs(out: Path, quick: bool, progress: bool) -> list[Path]:
    """The standard set under ``out``; ``quick``: about a minute on 2 cores."""
    analysis = analyze(AnalyzeConfig(models=("srn", "lstm", "gru"), length=100 if quick else 300, out=str(out)),
                       progress=progress)
    runs = [write_run(analysis, out)]
    write_spectra_and_units(analysis, runs[0])
    base = TrainConfig(task="digit-sum", length=10, steps=300 if quick else 3000, eval_every=50 if quick else 250,
                       trace_every=50 if quick else 250, out=str(out))
    for model in ("srn", "lstm"):
        runs.append(write_train_run(train(replace(base, model=model), progress=progress), out))
    return runs
