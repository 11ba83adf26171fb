"""Figures of a training run: loss and dev score, per-parameter gradient norms, and the decay of
‖∂L/∂h_t‖ at the recorded steps of training."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from gradlab.plots.style import figure_title, log10_axis_powers_of_ten, new_figure

#: The book's names for the first layer's parameters (NNDL 6.2): W input, U recurrent, b bias.
BOOK_NAMES = {"model.weight_ih_l0": "W", "model.weight_hh_l0": "U", "model.bias_ih_l0": "b"}
BOOK_STYLES = {"W": "-", "U": "--", "b": ":"}
BOOK_LABELS = {"W": "W (input weights)", "U": "U (recurrent weights)", "b": "b (bias)"}
#: Recorded training steps are coloured along this sequential map, read off a colour bar.
STEP_COLORMAP = "viridis"


def draw_gradient_norms(ax: Axes, history: Mapping[str, Sequence[float]], color=None, label: str = "") -> None:
    """‖∇W‖, ‖∇U‖, ‖∇b‖ (before clipping) against the training step, on a log axis; a step whose
    gradient is exactly 0 is marked by a tick along the bottom of the panel."""
    steps = np.asarray(history.get("step", []))
    for param, short in BOOK_NAMES.items():
        key = f"grad_norm/{param}"
        if key in history:
            values = np.asarray(history[key], dtype=float)
            line, = ax.plot(steps, np.where(values > 0, values, np.nan), BOOK_STYLES[short], color=color, lw=1,
                            label=f"{label} {BOOK_LABELS[short]}".strip())
            zero = values == 0
            if zero.any():  # marked along the bottom: a log axis has no 0, and a gap would look like missing data
                ax.plot(steps[zero], np.full(int(zero.sum()), 0.02 + 0.03 * list(BOOK_NAMES.values()).index(short)),
                        "|", ms=6, color=line.get_color(), transform=ax.get_xaxis_transform(),
                        label=f"{label} {short} exactly 0".strip())
    ax.set_yscale("log")
    ax.set(xlabel="training step", ylabel="gradient L2 norm (before clipping)")


def draw_trace_profiles(ax: Axes, traces: Sequence[dict], state: str = "h") -> None:
    """log10 mean ‖∂L/∂s_t‖ against distance, one line per recorded step, coloured by the step along
    a sequential colour map with a colour bar (no legend of near-identical colours)."""
    norm = Normalize(0, max(tr["step"] for tr in traces) or 1)
    cmap = colormaps[STEP_COLORMAP]
    for tr in traces:
        values = np.asarray(tr["profile"][state])
        ax.plot(np.arange(len(values)), values, color=cmap(norm(tr["step"])), lw=1.2)
    log10_axis_powers_of_ten(ax)
    ax.set(xlabel="distance from the last step, T − 1 − t (steps)",
           ylabel=rf"mean $\|\partial L/\partial {state}_t\|$")
    ax.figure.colorbar(ScalarMappable(norm, cmap), ax=ax, label="training step")


def training_figure(history: Mapping[str, Sequence[float]], evals: Sequence[dict], traces: Sequence[dict],
                    metric: str, title: str) -> Figure:
    """Loss and dev score | gradient norms of W, U, b | decay through training (if traced)."""
    fig, axes = new_figure(ncols=3 if traces else 2, width_per_panel=4.6)
    ax = axes[0]
    ax.plot(history.get("step", []), history.get("loss", []), color="0.6", lw=0.6, label="training loss (batch)")
    ax.set(xlabel="training step", ylabel="loss")
    handles = ax.get_lines()
    if evals:
        twin = ax.twinx()
        twin.plot([e["step"] for e in evals], [e[f"dev_{metric}"] for e in evals], "o-", color="C1", ms=3,
                  label=f"dev {metric}")
        twin.set_ylabel(f"dev {metric}")
        twin.grid(False)
        handles = [*handles, *twin.get_lines()]
    draw_gradient_norms(axes[1], history)
    if history.get("step"):  # legends above the panels, clear of the curves
        ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.01), ncol=2, fontsize=8, frameon=False)
        axes[1].legend(loc="lower left", bbox_to_anchor=(0, 1.01), ncol=2, fontsize=8, frameon=False)
    if traces:
        draw_trace_profiles(axes[2], traces)
    figure_title(fig, title)
    return fig
