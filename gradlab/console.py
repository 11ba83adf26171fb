"""The short table ``gradlab analyze`` prints: norms at a few distances, decay factor, horizon."""

from __future__ import annotations

import math

from gradlab.analyze import Analysis
from gradlab.plots.style import MODEL_LABELS
from gradlab.problem import LOSS_AT_TEXT

TABLE_DISTANCES = (0, 1, 5, 10, 25, 50, 100, 200, 500, 1000)


def format_value(v: float) -> str:
    """A gradient norm, with numerical trouble spelled out rather than hidden."""
    if v == 0.0:
        return "0 (underflow)"
    if not math.isfinite(v):
        return "inf (overflow)"
    return f"{v:.3e}"


def format_report(analysis: Analysis, run_dir) -> str:
    cfg = analysis.config
    lines = [f"gradlab analyze: digit-sum, len {cfg.length}, batch {cfg.batch}, hidden {cfg.hidden}, "
             f"{cfg.layers} layer(s), {cfg.dtype} on {cfg.device}, seed {cfg.seed}, loss on {LOSS_AT_TEXT[cfg.loss_at]}",
             ""]
    columns = [(r, s) for r in analysis.results for s in r.profiles]
    heads = [f"{MODEL_LABELS[r.kind]} ‖∂L/∂{s}_t‖" for r, s in columns]
    width = max(16, *(len(h) for h in heads))
    lines.append("distance  " + "  ".join(h.rjust(width) for h in heads))
    ks = [k for k in TABLE_DISTANCES if k < cfg.length] + ([cfg.length - 1] if cfg.length - 1 not in TABLE_DISTANCES else [])
    for k in ks:
        lines.append(f"{k:>8}  " + "  ".join(format_value(float(r.profiles[s].mean[k])).rjust(width) for r, s in columns))
    lines.append("")
    for r in analysis.results:
        for s, fit in r.fits.items():
            hz = r.horizons[s]
            factor = (f"decay factor ×{fit.factor:.4g} per step (fit over distances {fit.first}–{fit.last}, "
                      f"R² {fit.r_squared:.3f})") if fit.factor is not None else f"decay factor: none ({fit.reason})"
            reach = f"falls by {hz.drop:.0e} at distance {hz.distance}" if hz.distance is not None else hz.reason
            lines.append(f"{MODEL_LABELS[r.kind]:>4} {s}: {factor}; horizon: {reach}")
    lines += ["", f"files written to {run_dir}/ (trace.csv, summary.json, decay.png, decay.pdf, models.pt, batch.pt)"]
    return "\n".join(lines)
