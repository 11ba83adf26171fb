"""Figures of the Jacobians ∂s_T/∂s_t and of the gradient per hidden unit: singular-value bands
against distance with Lyapunov's prediction beside them, and a heatmap of log10 |∂L/∂h_t| over
distance × hidden unit. Both from arrays, never from a model."""

from __future__ import annotations

from typing import Mapping, Optional

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from gradlab.plots.style import MODEL_COLORS, MODEL_LABELS, figure_title, log10_axis_powers_of_ten, new_figure

AXIS_DISTANCE = "distance from the last step, $k = T - 1 - t$ (steps)"


def _finite(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return np.where(np.isfinite(v), v, np.nan)


def singular_value_bands_figure(distance: np.ndarray, log10_largest: Mapping[str, np.ndarray],
                                log10_smallest: Mapping[str, np.ndarray],
                                lyapunov_log10_per_step: Optional[Mapping[str, float]] = None,
                                title: str = "") -> Figure:
    """Per model: the largest and smallest singular value of ∂s_{T−1}/∂s_t, each [K, B] in log10 by
    distance, drawn as the batch median (solid: largest, dotted: smallest) between the 10th and 90th
    percentile; Lyapunov's prediction (dashed), k · log10 of the largest exponent's factor."""
    fig, (ax,) = new_figure(width_per_panel=6.0)
    for model, largest in log10_largest.items():
        color = MODEL_COLORS[model]
        for values, style, which in ((largest, "-", "largest"), (log10_smallest[model], ":", "smallest")):
            v = _finite(values)
            if not np.isfinite(v).any():
                continue
            with np.errstate(all="ignore"):
                lo, mid, hi = np.nanpercentile(v, (10, 50, 90), axis=1)
            ax.plot(distance, mid, style, color=color, lw=1.5, label=f"{MODEL_LABELS[model]}: {which} σ")
            ax.fill_between(distance, lo, hi, color=color, alpha=0.15, lw=0)
        if lyapunov_log10_per_step and lyapunov_log10_per_step.get(model) is not None:
            ax.plot(distance, distance * lyapunov_log10_per_step[model], "--", color=color, lw=0.9,
                    label=f"{MODEL_LABELS[model]}: Lyapunov prediction")
    log10_axis_powers_of_ten(ax, "y")
    ax.set(xlabel=AXIS_DISTANCE, ylabel=r"singular value of $\partial s_{T-1}/\partial s_t$")
    if ax.get_lines():
        ax.legend(fontsize=7, loc="best")
    figure_title(fig, title or "singular values of the state Jacobian: median and 10th–90th percentile over the batch")
    return fig


def unit_heatmap_figure(log10_by_unit: np.ndarray, title: str = "") -> Figure:
    """log10 of the batch-mean |∂L/∂h_t| per hidden unit, [K, H] by distance (rows) → a heatmap of
    hidden unit (y) × distance (x); an exact zero is left blank."""
    fig, (ax,) = new_figure(width_per_panel=6.0)
    grid = _finite(log10_by_unit).T  # [H, K]
    H, K = grid.shape if grid.ndim == 2 else (1, 1)
    image = ax.imshow(grid, aspect="auto", origin="lower", cmap=colormaps["viridis"], interpolation="nearest",
                      extent=(-0.5, K - 0.5, -0.5, H - 0.5))
    ax.set(xlabel=AXIS_DISTANCE, ylabel="hidden unit")
    ax.grid(False)
    fig.colorbar(image, ax=ax).set_label(r"$\log_{10}|\partial L/\partial h_t|$ (batch mean)")
    figure_title(fig, title or "the gradient on each hidden unit against distance")
    return fig
