"""Figures of a watched training run: one step's decay curves, and the decay through training.

Both draw log10 norms from a watch's distance sweep (the gradient seeded at each sample's own last
step, against the distance from it; see ``gradlab.decay_of``), never a model.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from gradlab.analysis.metrics import DecayFit, DecayProfile
from gradlab.plots.style import log10_axis_powers_of_ten, new_figure

AXIS_DISTANCE = "distance from each sample's last step, $k$ (steps)"


def step_decay_figure(profiles: Mapping[str, DecayProfile], fits: Mapping[str, DecayFit], title: str = "") -> Figure:
    """One line per curve (e.g. "rnn h, layer 0, reverse"): log10 of the batch-mean norm against distance."""
    fig, (ax,) = new_figure()
    for label, prof in profiles.items():
        fit = fits.get(label)
        factor = f" (×{fit.factor:.3g} per step)" if fit is not None and fit.factor is not None else ""
        values = np.where(np.isfinite(prof.log10_mean), prof.log10_mean, np.nan)
        ax.plot(prof.distance, values, lw=1.4, label=label + factor)
    log10_axis_powers_of_ten(ax)
    ax.set(xlabel=AXIS_DISTANCE, ylabel=r"$\|\partial L_{last}/\partial s_t\|$ (batch mean)", title=title)
    if profiles:
        ax.legend(fontsize=7)
    return fig


def decay_curves_through_training_figure(steps: Sequence[int], profiles: Sequence[DecayProfile],
                                         title: str = "") -> Figure:
    """One decay curve per recorded step, coloured from early (light) to late (dark) by a
    sequential colour map, with a colour bar for the training step."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    fig, (ax,) = new_figure(width_per_panel=6.0)
    cmap = colormaps["viridis_r"]
    norm = Normalize(vmin=min(steps, default=0), vmax=max(max(steps, default=1), min(steps, default=0) + 1))
    for step, prof in zip(steps, profiles):
        values = np.where(np.isfinite(prof.log10_mean), prof.log10_mean, np.nan)
        ax.plot(prof.distance, values, color=cmap(norm(step)), lw=1.1)
    log10_axis_powers_of_ten(ax)
    ax.set(xlabel=AXIS_DISTANCE, ylabel=r"$\|\partial L_{last}/\partial s_t\|$ (batch mean)", title=title)
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax)
    bar.set_label("training step")
    return fig


def decay_through_training_figure(steps: Sequence[int], log10_means: Sequence[np.ndarray], title: str = "") -> Figure:
    """Heatmap of log10 batch-mean norm over training step (rows) × distance (columns); a distance a
    step's batch does not reach is left blank."""
    fig, (ax,) = new_figure(width_per_panel=6.0)
    K = max((len(v) for v in log10_means), default=1)
    grid = np.full((len(log10_means), K), np.nan)
    for i, values in enumerate(log10_means):
        grid[i, :len(values)] = np.where(np.isfinite(values), values, np.nan)
    image = ax.imshow(grid, aspect="auto", origin="lower", cmap=colormaps["viridis"], interpolation="nearest",
                      extent=(-0.5, K - 0.5, -0.5, len(log10_means) - 0.5))
    ax.set_yticks(range(len(steps)), [str(s) for s in steps] if len(steps) <= 20 else None)
    if len(steps) > 20:
        ax.set_yticks([])
    ax.set(xlabel=AXIS_DISTANCE, ylabel="training step (recorded)", title=title)
    ax.grid(False)  # grid lines would cut across the cells
    bar = fig.colorbar(image, ax=ax)
    bar.set_label(r"$\log_{10}\|\partial L_{last}/\partial s_t\|$ (batch mean)")
    return fig
