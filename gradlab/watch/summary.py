"""What a recorded step says about each curve: the batch statistics of the log10 norms against
distance, the fitted decay factor and the horizon — for the run directory's per-step summary and
the TensorBoard scalars, both from the watch's distance sweep (``gradlab.decay_of``)."""

from __future__ import annotations

from gradlab.analysis.metrics import decay_of
from gradlab.common.files import finite_or_null
from gradlab.watch.steps import StepTraces


def curves(trace) -> list[tuple[str, str, int, int]]:
    """(tag suffix, name, layer, direction) of every curve a trace has, e.g. ("c/layer1/reverse", "c", 1, 1)."""
    out = []
    for name in trace.names:
        for k in range(trace.num_layers):
            for d in range(trace.num_directions):
                out.append((f"{name}/layer{k}" + ("/reverse" if d else ""), name, k, d))
    return out


def step_summary(traces: StepTraces) -> dict:
    """{"step", "modules": {name: [one entry per state, layer and direction]}} of a finished step.

    Each entry: "state", "layer", "direction", "distance" [K], "log10_mean" / "log10_lo" / "log10_hi"
    [K] (the batch mean's log10 and the per-sample band; null where the gradient is exactly zero),
    "status" [K] ("ok", "underflow", "overflow" of the plain values; the watch's plain means
    come from the exact log10 norms in float64, so never "subnormal"), "decay_factor" per step (null
    with "fit_reason" when it cannot be fitted), "log10_per_step", "r_squared", "horizon" (null with
    "horizon_reason"). A cell, recorded by autograd's totals only, has no distance sweep and no entries.
    """
    modules = {}
    for module, trace in traces.items():
        entries = []
        if trace.distance_log10_norms is not None:
            for _, name, k, d in curves(trace):
                profile, fit, hz = decay_of(trace, name, k, d)
                entries.append({
                    "state": name, "layer": k, "direction": d, "distance": profile.distance.tolist(),
                    "log10_mean": finite_or_null(profile.log10_mean), "log10_lo": finite_or_null(profile.log10_lo),
                    "log10_hi": finite_or_null(profile.log10_hi), "status": [str(s) for s in profile.status],
                    "decay_factor": fit.factor, "log10_per_step": fit.log10_per_step, "r_squared": fit.r_squared,
                    "fit_reason": fit.reason, "horizon": hz.distance, "horizon_reason": hz.reason})
        modules[module] = entries
    return {"step": traces.step, "modules": modules}
