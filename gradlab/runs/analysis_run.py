"""The files of a ``gradlab analyze`` run: trace.csv, summary.json, models.pt, batch.pt, decay.png/pdf.

Everything here reads an :class:`~gradlab.analysis.pipeline.Analysis`; nothing computes gradients. Every
description written comes from the objects that ran (the problem's modules and task, the trace's engine).
"""

from __future__ import annotations

import csv
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from gradlab.analysis.pipeline import Analysis, ModelResult
from gradlab.analysis.predictions import forget_gate_curve
from gradlab.analysis.verification import RUN_BATCH, RUN_MODELS
from gradlab.common.files import RunDir, fresh_run_dir, save_figure, write_json
from gradlab.common.versions import versions
from gradlab.plots.decay import decay_figure
from gradlab.tasks.weights import save_problems

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
                "steps_subnormal": int(np.sum(prof.status == "subnormal")),
            }
        measured = {f"fitted_{s}": res.fits[s].factor for s in res.fits}
        models[res.kind] = {"loss": res.trace.loss, "loss_is_finite": bool(np.isfinite(res.trace.loss)),
                            "forward_overflow_step": res.forward_overflow_step, "gradients": per_state,
                            "decay_factor_per_step": {**measured, **{f"predicted_by_{name}": p["factor_per_step"]
                                                                     for name, p in res.predictions.items()}},
                            "theory": res.predictions}
    first = analysis.results[0]
    described = first.problem.describe(cfg.loss_at, reduction="sum")
    return {
        "command": "gradlab analyze",
        "config": asdict(cfg),
        "problem": {
            "task": described["task"],
            "model": {res.kind: res.problem.describe(cfg.loss_at)["model"] for res in analysis.results},
            "state": _state_text(cfg),
            "loss": described["loss"],
            "norms": "per-sample L2 norm over hidden units of the total dL/dh_t (dL/dc_t); 'mean' is the batch mean "
                     "of the norms as the run's dtype holds them (0.0 = underflow, inf = overflow, 'subnormal' = some "
                     "norm below the dtype's normal range, its digits partly lost); 'log10_mean' is "
                     "log10 of the batch mean of the true norms, from the log-domain backward pass",
            "engine": first.trace.meta.get("engine", ""),
            "distance": "k = t_loss - t, with t_loss the last step",
            "fit": "least squares of log10_mean against distance over the fitted range; factor = 10^slope",
        },
        "versions": versions(),
        "models": models,
    }


def _state_text(cfg) -> str:
    if cfg.checkpoint is not None:
        return f"trained (checkpoint {Path(cfg.checkpoint).name})"
    return "at initialisation" + ("" if cfg.init == "default" else f" ({cfg.init} init)")


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
    save_problems(d / RUN_MODELS, {res.kind: res.problem for res in analysis.results})
    inputs = torch.as_tensor(analysis.inputs)
    if not inputs.is_floating_point() and int(inputs.max()) < 256:
        inputs = inputs.to(torch.uint8)  # symbols: a quarter of the size at 10^6 steps
    torch.save({"inputs": inputs, "targets": torch.as_tensor(analysis.targets),
                "config": asdict(analysis.config)}, d / RUN_BATCH)
    fig = analysis_figure(analysis)
    if fig is not None:
        save_figure(fig, d / "decay")


def analysis_figure(analysis: Analysis):
    """The decay figure of an analysis with theory's predicted slopes, or None when no model has
    a gradient to draw (every forward pass overflowed)."""
    cfg = analysis.config
    shown = [r for r in analysis.results if r.profiles]
    if not shown:
        return None
    where = shown[0].problem.loss_steps(cfg.loss_at)
    title = (f"{cfg.task}, T = {cfg.length}, {cfg.layers} layer(s), H = {cfg.hidden}, {cfg.dtype}, "
             f"loss on {where}, {_state_text(cfg)}")
    return decay_figure({r.kind: r.profiles for r in shown}, {r.kind: r.fits for r in shown}, title=title,
                        dtype=cfg.dtype, predicted={r.kind: predicted_lines(r) for r in shown})


def predicted_lines(res: ModelResult) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Per state, (label, log10 values against distance) of each prediction, anchored at the
    measured value at distance 0."""
    lines: dict[str, list] = {}
    for s, prof in res.profiles.items():
        k, start = prof.distance.astype(float), prof.log10_mean[0]
        for name, label in (("lyapunov", "Lyapunov"), ("pascanu_bound", "Pascanu bound")):
            if name in res.predictions and (s == "h" or name == "lyapunov"):
                slope = res.predictions[name]["log10_per_step"]
                if not np.isfinite(slope):  # e.g. every ReLU unit dead: a factor of 0, no line to draw
                    continue
                lines.setdefault(s, []).append((f"{label} ×{10 ** slope:.3g}", start + slope * k))
        if s == "c" and res.forget_log10 is not None:
            lines.setdefault(s, []).append(
                (f"∏ forget gates ×{res.predictions['forget_gates']['factor_per_step']:.3g}",
                 forget_gate_curve(res.forget_log10, start)[: len(k)]))
    return lines
