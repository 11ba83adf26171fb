"""The figures of each run, drawn from what its files hold: for an analyze run the decay against
distance and the explicit gradient beside the total; for a train run its training figure and the
training step × distance heatmap; for a watch run the decay curves and heatmap of every recorded
module, state, layer and direction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
from matplotlib.figure import Figure

from gradlab.analysis.metrics import DecayFit, DecayProfile
from gradlab.common.files import finite_or_null
from gradlab.plots.decay import decay_figure, explicit_and_total_figure
from gradlab.plots.spectra import singular_value_bands_figure, unit_heatmap_figure
from gradlab.plots.sweep import sweep_figure
from gradlab.plots.training import training_figure
from gradlab.plots.watch import decay_curves_through_training_figure, decay_through_training_figure
from gradlab.report.sources import Source, analysis_curves, training_series
from gradlab.runs.watch_figures import watch_series

STATES = ("h", "c")


@dataclass
class Drawn:
    """One figure of the report: file stem, the figure, its caption (what to look at) and the
    numbers drawn (the JSON sidecar)."""

    stem: str
    figure: Figure
    caption: str
    data: dict[str, Any]


def figures_of(source: Source) -> Iterator[Drawn]:
    yield from {"analyze": _analyze, "train": _train, "watch": _watch, "sweep": _sweep}[source.kind](source)


def _sweep(source: Source) -> Iterator[Drawn]:
    for stem, drawn in source.extras.items():  # the sweep's own sidecars: sweep_<metric>.json
        curves = {model: [tuple(p) for p in points] for model, points in drawn["curves"].items()}
        x, metric = drawn["x"].lstrip("-"), drawn["metric"].replace("_", " ")
        yield Drawn(f"{source.name}_{stem}", sweep_figure(curves, x, metric),
                    f"{metric} against {x}, one line per model: the mean over seeds with its 95 % confidence "
                    "interval (Student's t); a setting with one seed has no bar. Bars that overlap do not "
                    "tell the settings apart.", drawn)


def _analyze(source: Source) -> Iterator[Drawn]:
    cfg, curves = source.config, analysis_curves(source)
    profiles: dict[str, dict[str, DecayProfile]] = {}
    fits: dict[str, dict[str, DecayFit]] = {}
    for model, c in curves.items():
        for s in STATES:
            if f"log10_grad_{s}" in c and np.isfinite(c[f"log10_grad_{s}"]).any():
                profiles.setdefault(model, {})[s] = DecayProfile(
                    c["distance"].astype(int), c[f"grad_{s}"], c[f"log10_grad_{s}"], c[f"log10_grad_{s}_p10"],
                    c[f"log10_grad_{s}_p90"])
                fit = source.summary["models"][model]["gradients"][s]["decay_factor_per_step"]
                fits.setdefault(model, {})[s] = DecayFit(**fit)
    title = f"{cfg.get('task')}, T = {cfg.get('length')}, H = {cfg.get('hidden')}, {cfg.get('dtype')} ({source.name})"
    if profiles:
        yield Drawn(f"{source.name}_decay", decay_figure(profiles, fits, title=title, dtype=cfg.get("dtype", "")),
                    "How far back the gradient reaches: log10 of the batch-mean ‖∂L/∂h_t‖ (and ‖∂L/∂c_t‖) against "
                    "the distance from the step the loss reads, with the 10th–90th percentile band over the batch. "
                    "A straight line is a constant factor per step (in the legend); a steeper line forgets sooner.",
                    {"models": {m: {s: {"distance": p.distance.tolist(),
                                                                  "log10_mean": finite_or_null(p.log10_mean),
                                                                  "log10_p10": finite_or_null(p.log10_lo),
                                                                  "log10_p90": finite_or_null(p.log10_hi),
                                                                  "decay_factor": fits[m][s].factor}
                                                              for s, p in per.items()} for m, per in profiles.items()}})
        with np.errstate(divide="ignore"):
            explicit = {m: np.log10(c["explicit_h"]) for m, c in curves.items() if m in profiles}
        total = {m: curves[m]["log10_grad_h"] for m in explicit}
        distance = next(iter(curves.values()))["distance"]
        yield Drawn(f"{source.name}_explicit", explicit_and_total_figure(distance, total, explicit, title=title),
                    "The total gradient ∂L/∂h_t (line) beside its explicit part ∂⁺L/∂h_t (dots): what reaches h_t "
                    "directly from the loss. Where the dots are absent the loss does not read that step, and every "
                    "bit of the total arrived through the recurrence.",
                    {"distance": distance.tolist(),
                     "log10_total": {m: finite_or_null(v) for m, v in total.items()},
                     "log10_explicit": {m: finite_or_null(v) for m, v in explicit.items()}})
    yield from _spectra_and_units(source, title)


def _spectra_and_units(source: Source, title: str) -> Iterator[Drawn]:
    spectra, units = source.extras.get("spectra"), source.extras.get("units")
    if spectra:
        largest = {m: np.asarray(v["log10_largest"], dtype=float) for m, v in spectra.items()}
        smallest = {m: np.asarray(v["log10_smallest"], dtype=float) for m, v in spectra.items()}
        distance = np.arange(next(iter(largest.values())).shape[0])
        lyapunov = {m: v.get("lyapunov_log10_per_step") for m, v in spectra.items()}
        yield Drawn(f"{source.name}_jacobian_spectra",
                    singular_value_bands_figure(distance, largest, smallest, lyapunov, title=title),
                    "Singular values of the Jacobian ∂s_{T−1}/∂s_t against distance (median and 10th–90th "
                    "percentile over the batch): the largest bounds how much of a perturbation at step t survives "
                    "to the end, the smallest how much at least; the dashed line is Lyapunov's prediction from the "
                    "largest exponent. A gap between the two bands is a direction that is forgotten faster. Computed "
                    "in float64; values below about 1e-16 × the largest are at the SVD's resolution, not measured.",
                    {"distance": distance.tolist(), **spectra})
    for model, entry in (units or {}).items():
        grid = np.asarray(entry["log10_mean_abs_grad_h"], dtype=float)
        yield Drawn(f"{source.name}_{model}_units", unit_heatmap_figure(grid, title=f"{model.upper()}: {title}"),
                    f"{model.upper()}: log10 of the batch-mean |∂L/∂h_t| of each hidden unit against distance: a "
                    "few units that stay bright further right carry the memory; a uniform fade is one decay rate for all "
                    "(float64, the top layer).",
                    {"model": model, **entry})


def _train(source: Source) -> Iterator[Drawn]:
    cfg, summary = source.config, source.summary
    history, evals, traces = training_series(source)
    metric = summary.get("task", {}).get("metric", "accuracy")
    title = (f"{cfg.get('model', '').upper()} on {cfg.get('task')}, T = {cfg.get('length')}, H = {cfg.get('hidden')} "
             f"({source.name})")
    yield Drawn(f"{source.name}_training", training_figure(history, evals, traces, metric, title),
                "Training: the loss and the dev score; the gradient norms of the input weights W, the recurrent "
                "weights U and the bias b before clipping (a spike is an explosion); and, when traced, the decay of "
                "‖∂L/∂h_t‖ at the recorded steps, coloured by training step.",
                {"history": history, "evals": evals, "traces": traces})
    for state in STATES:
        shown = [t for t in traces if state in t["profile"]]
        if len(shown) >= 2:
            steps = [t["step"] for t in shown]
            means = [np.asarray(t["profile"][state], dtype=float) for t in shown]
            yield Drawn(f"{source.name}_{state}_heatmap",
                        decay_through_training_figure(steps, means, title=f"{cfg.get('model', '').upper()}: ‖∂L/∂{state}_t‖ "
                                                                           "through training"),
                        f"log10 of the mean ‖∂L/∂{state}_t‖ over training step (rows) × distance (columns): a colour "
                        "that reaches further right as training goes on is a memory that grows.",
                        {"state": state, "steps": steps,
                         "log10_mean": [finite_or_null(m) for m in means]})


def _watch(source: Source) -> Iterator[Drawn]:
    for label, entry in watch_series(source.path, source.extras.get("steps")).items():
        stem = f"{source.name}_{label.replace('/', '_')}"
        title = f"{label}: decay through training"
        data = {"curve": label, "steps": entry["steps"], "fits": entry["fits"],
                "log10_mean": [finite_or_null(p.log10_mean) for p in entry["profiles"]]}
        yield Drawn(f"{stem}_curves", decay_curves_through_training_figure(entry["steps"], entry["profiles"], title),
                    f"{label}: the decay of the gradient from each sample's last step at every recorded training step "
                    "(the watch's distance sweep), light early to dark late.", data)
        yield Drawn(f"{stem}_heatmap",
                    decay_through_training_figure(entry["steps"], [p.log10_mean for p in entry["profiles"]], title),
                    f"{label}: the same as a heatmap of training step × distance.", data)
