"""The short table ``gradlab analyze`` prints: norms at a few distances, decay factor, horizon."""

from __future__ import annotations

import math
from pathlib import Path

from gradlab.analysis.pipeline import Analysis
from gradlab.models.architectures import LABELS as MODEL_LABELS

TABLE_DISTANCES = (0, 1, 5, 10, 25, 50, 100, 200, 500, 1000, 10_000, 100_000, 1_000_000)


def format_log10(value: float) -> str:
    """10^value written as m.mmme±N, also far outside float64 (e.g. 3.100e-2052)."""
    if not math.isfinite(value):
        return "0" if value < 0 else "inf"
    exponent = math.floor(value)
    mantissa = 10 ** (value - exponent)
    if mantissa >= 9.9995:  # rounding would print 10.000
        mantissa, exponent = 1.0, exponent + 1
    return f"{mantissa:.3f}e{exponent:+03d}"


def format_value(log10_value: float, plain: float, dtype: str) -> str:
    """A gradient norm from its log10, with the run dtype's numerical trouble spelled out."""
    text = format_log10(log10_value)
    if plain == 0.0 and math.isfinite(log10_value):
        return f"{text} (0 in {dtype})"
    if not math.isfinite(plain):
        return f"{text} (inf in {dtype})"
    return text


def format_report(analysis: Analysis, run_dir) -> str:
    cfg = analysis.config
    lines = [f"gradlab analyze: {cfg.task}{' (trained)' if cfg.checkpoint else ''}, len {cfg.length}, batch {cfg.batch}, hidden {cfg.hidden}, "
             f"{cfg.layers} layer(s), {cfg.dtype} on {cfg.device}, seed {cfg.seed}, loss on {analysis.results[0].problem.loss_steps(cfg.loss_at)}",
             ""]
    for r in analysis.results:
        if r.forward_overflow_step is not None:
            lines.append(f"{MODEL_LABELS[r.kind]}: the forward pass overflowed at step {r.forward_overflow_step} "
                         f"(a state is inf in {cfg.dtype}); the loss is not finite and no gradient is defined")
    columns = [(r, s) for r in analysis.results for s in r.profiles]
    if not columns:
        return "\n".join(lines + ["", f"files written to {run_dir}/ ({', '.join(sorted(p.name for p in Path(run_dir).iterdir()))})"])
    heads = [f"{MODEL_LABELS[r.kind]} ‖∂L/∂{s}_t‖" for r, s in columns]
    ks = [k for k in TABLE_DISTANCES if k < cfg.length]
    if cfg.length - 1 not in ks:
        ks.append(cfg.length - 1)
    cells = [[format_value(float(r.profiles[s].log10_mean[k]), float(r.profiles[s].mean[k]), cfg.dtype)
              for r, s in columns] for k in ks]
    widths = [max(len(h), *(len(row[j]) for row in cells)) for j, h in enumerate(heads)]
    lines.append("distance  " + "  ".join(h.rjust(w) for h, w in zip(heads, widths)))
    for k, row in zip(ks, cells):
        lines.append(f"{k:>8}  " + "  ".join(c.rjust(w) for c, w in zip(row, widths)))
    lines.append("")
    for r in analysis.results:
        for s, fit in r.fits.items():  # empty for a model whose forward pass overflowed
            hz = r.horizons[s]
            factor = (f"decay factor ×{fit.factor:.4g} per step (fit over distances {fit.first}–{fit.last}, "
                      f"R² {fit.r_squared:.3f})") if fit.factor is not None else f"decay factor: none ({fit.reason})"
            reach = f"falls by {hz.drop:.0e} at distance {hz.distance}" if hz.distance is not None else hz.reason
            lines.append(f"{MODEL_LABELS[r.kind]:>4} {s}: {factor}; horizon: {reach}")
    lines += ["", f"files written to {run_dir}/ ({', '.join(sorted(p.name for p in Path(run_dir).iterdir()))})"]
    return "\n".join(lines)
