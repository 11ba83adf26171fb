"""One look for every gradlab figure: a colour per model kept across figures, and axes of log10
values labelled in powers of ten. (Saving a figure whole is ``gradlab.common.files.save_figure``.)"""

from __future__ import annotations

import textwrap

import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from gradlab.models.architectures import LABELS

_PALETTE = sns.color_palette("colorblind")
#: One colour per model, the same in every figure.
MODEL_COLORS = {"srn": _PALETTE[3], "lstm": _PALETTE[0], "gru": _PALETTE[2]}
MODEL_LABELS = LABELS
RC = {"axes.grid": True, "grid.alpha": 0.3, "font.size": 10, "axes.titlesize": 11,
      "savefig.dpi": 150, "figure.constrained_layout.use": True}


def new_figure(ncols: int = 1, width_per_panel: float = 5.0, height: float = 3.8) -> tuple[Figure, list[Axes]]:
    """A figure without pyplot (no global state, no display needed) and its axes."""
    with sns.axes_style("whitegrid"), sns.plotting_context("paper", rc=RC):
        fig = Figure(figsize=(width_per_panel * ncols, height), layout="constrained")
        axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


#: Characters of a 10-point title per inch of figure width (DejaVu Sans averages ~0.55 em a character).
TITLE_CHARS_PER_INCH_AT_10PT = 12.5


def figure_title(fig: Figure, text: str, fontsize: float = 10) -> None:
    """``fig.suptitle(text)``, each of its lines wrapped to the figure's width so that no word is
    cut off at the sides (a single-panel figure is only 5 inches wide)."""
    width = max(20, int(fig.get_figwidth() * TITLE_CHARS_PER_INCH_AT_10PT * 10 / fontsize))
    lines = [textwrap.fill(line, width) if "$" not in line else line for line in text.splitlines()]
    fig.suptitle("\n".join(lines), fontsize=fontsize)


def log10_axis_powers_of_ten(ax: Axes, axis: str = "y") -> None:
    """An axis that holds log10 values, labelled as powers of ten (10^-400 has no float64, so
    values this far out are drawn as their logarithms on a linear axis)."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(MaxNLocator(nbins=8, integer=True, min_n_ticks=1))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"$10^{{{int(round(v))}}}$"))
