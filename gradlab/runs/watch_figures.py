"""The figures of a watch run directory: per module, state, layer and direction, the decay curves
coloured by training step and the training step × distance heatmap, each as PNG and PDF with a JSON
sidecar of the numbers drawn, written whole into a directory of their own."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from gradlab.analysis.metrics import decay_of
from gradlab.common.files import fresh_run_dir, save_figure, write_json
from gradlab.plots.watch import decay_curves_through_training_figure, decay_through_training_figure
from gradlab.watch.rundir import load_watch
from gradlab.watch.steps import StepTraces
from gradlab.watch.tensorboard import curves


def watch_series(run_dir: Path, steps: Optional[list[StepTraces]] = None) -> dict[str, dict]:
    """Per curve ("module/h/layer0[/reverse]"): {"steps", "profiles" (DecayProfile per recorded step,
    against the distance from each sample's last step), "fits" ({"factor", "horizon"} per step)}, of
    the watch run in ``run_dir`` (or of its ``steps``, already loaded)."""
    steps = load_watch(run_dir) if steps is None else steps
    series: dict[str, dict] = {}
    for traces in steps:
        for module, trace in traces.items():
            if trace.distance_log10_norms is None:
                continue
            for suffix, name, k, d in curves(trace):
                profile, fit, hz = decay_of(trace, name, k, d)
                entry = series.setdefault(f"{module or 'model'}/{suffix}", {"steps": [], "profiles": [], "fits": []})
                entry["steps"].append(traces.step)
                entry["profiles"].append(profile)
                entry["fits"].append({"factor": fit.factor, "horizon": hz.distance})
    return series


def write_watch_figures(run_dir: Path, out: Path) -> Path:
    """Draw every curve of the watch run in ``run_dir`` into a fresh directory under ``out``."""
    series = watch_series(run_dir)
    with fresh_run_dir(Path(out), f"figures-{Path(run_dir).name}") as run:
        for label, entry in series.items():
            stem = label.replace("/", "_")
            title = f"{label}: decay through training"
            save_figure(decay_curves_through_training_figure(entry["steps"], entry["profiles"], title),
                        run.staging / f"{stem}_curves")
            save_figure(decay_through_training_figure(entry["steps"], [p.log10_mean for p in entry["profiles"]], title),
                        run.staging / f"{stem}_heatmap")
            write_json(run.staging / f"{stem}.json", {
                "curve": label, "source": str(run_dir),
                "what": "log10 of the batch mean of ||dL_last/ds_t|| against the distance from each sample's last "
                        "step (the watch's distance sweep), per recorded training step",
                "steps": entry["steps"], "fits": entry["fits"],
                "log10_mean": [p.log10_mean.tolist() for p in entry["profiles"]]})
    return run.final
