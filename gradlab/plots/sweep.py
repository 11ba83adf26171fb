"""A sweep's metric against a varied setting, one line per model, with 95 % confidence intervals
over seeds as error bars (none where a setting has a single seed)."""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
from matplotlib.figure import Figure

from gradlab.plots.style import MODEL_COLORS, MODEL_LABELS, new_figure


def _number(v) -> Optional[float]:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def sweep_figure(curves: Mapping[str, Sequence[tuple]], xlabel: str, ylabel: str) -> Figure:
    """curves[model]: (x, mean, ci95_low, ci95_high) per setting; x numeric or a label."""
    fig, (ax,) = new_figure()
    for model, points in curves.items():
        xs = [p[0] for p in points]
        numeric = all(_number(x) is not None for x in xs)
        order = np.argsort([_number(x) for x in xs]) if numeric else np.arange(len(xs))
        x = np.array([_number(xs[i]) if numeric else i for i in order], dtype=float)
        mean = np.array([np.nan if points[i][1] is None else points[i][1] for i in order], dtype=float)
        lo = np.array([np.nan if points[i][2] is None else points[i][2] for i in order], dtype=float)
        hi = np.array([np.nan if points[i][3] is None else points[i][3] for i in order], dtype=float)
        err = np.vstack([np.where(np.isnan(lo), 0, mean - lo), np.where(np.isnan(hi), 0, hi - mean)])
        color = MODEL_COLORS.get(model)
        ax.errorbar(x, mean, yerr=err, fmt="o-" if numeric else "o", color=color, capsize=3, lw=1.3,  # no line between categories
                    label=MODEL_LABELS.get(model, model))
        if not numeric:
            ax.set_xticks(x, [str(xs[i]) for i in order])
    ax.set(xlabel=xlabel, ylabel=f"{ylabel} (mean, 95 % interval over seeds)")
    ax.legend(fontsize=8)
    return fig
