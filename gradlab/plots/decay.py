"""The decay figure: ‖∂L/∂h_t‖ (and ‖∂L/∂c_t‖) against distance, log scale, one colour per model."""

from __future__ import annotations

from typing import Mapping

import numpy as np
from matplotlib.figure import Figure

from gradlab.metrics import BAND_PERCENTILES, DecayFit, DecayProfile
from gradlab.plots.style import MODEL_COLORS, MODEL_LABELS, log_axis_powers_of_ten, new_figure

STATE_TITLES = {"h": r"$\|\partial L/\partial h_t\|$", "c": r"$\|\partial L/\partial c_t\|$"}
PANEL_TITLES = {"h": "hidden state $h_t$", "c": "cell state $c_t$ (LSTM)"}


def decay_figure(
    profiles: Mapping[str, Mapping[str, DecayProfile]],
    fits: Mapping[str, Mapping[str, DecayFit]],
    title: str = "",
) -> Figure:
    """profiles[model][state] and fits[model][state] → one panel per state ("h", then "c").

    Each model: its batch mean (line), the percentile band, and the fitted decay factor in the
    legend. Where the mean has underflowed to 0.0 a marker on the lower edge says so.
    """
    states = [s for s in ("h", "c") if any(s in p for p in profiles.values())]
    fig, axes = new_figure(ncols=len(states))
    lo_pct, hi_pct = BAND_PERCENTILES
    for ax, state in zip(axes, states):
        for model, per_state in profiles.items():
            if state not in per_state:
                continue
            prof, fit = per_state[state], fits[model][state]
            color = MODEL_COLORS[model]
            label = MODEL_LABELS[model]
            if fit.factor is not None:
                label += f" (×{fit.factor:.3g} per step)"
            shown = np.isfinite(prof.mean) & (prof.mean > 0)
            mean = np.where(shown, prof.mean, np.nan)
            ax.plot(prof.distance, mean, color=color, lw=1.6, label=label)
            band = shown & (prof.lo > 0) & np.isfinite(prof.hi)
            ax.fill_between(prof.distance, np.where(band, prof.lo, np.nan), np.where(band, prof.hi, np.nan),
                            color=color, alpha=0.2, lw=0)
            _mark_trouble(ax, prof, color)
        log_axis_powers_of_ten(ax, "y")
        ax.set_xlabel("distance from the step the loss reads, $k = t_{loss} - t$ (steps)")
        ax.set_ylabel(f"{STATE_TITLES[state]} (batch mean)")
        ax.set_title(PANEL_TITLES[state])
        ax.set_xlim(0, max(len(p[state].distance) - 1 for p in profiles.values() if state in p) or 1)
        ax.legend(loc="best", fontsize=8)
    note = f"line: batch mean of per-sample norms; band: {lo_pct:g}th–{hi_pct:g}th percentile over the batch"
    fig.suptitle(f"{title}\n{note}" if title else note, fontsize=10)
    return fig


def _mark_trouble(ax, prof: DecayProfile, color) -> None:
    """Mark where the mean first is 0.0 (underflow) or inf (overflow): such values have no place
    on a log axis, so they are drawn as a marker on the lower or upper edge with a note."""
    for word, where, y in (("underflow", prof.mean == 0, 0.0), ("overflow", ~np.isfinite(prof.mean), 1.0)):
        idx = np.flatnonzero(where)
        if idx.size:
            k = int(prof.distance[idx[0]])
            ax.plot([k], [y], marker="v" if y == 0 else "^", color=color, ms=8, clip_on=False,
                    transform=ax.get_xaxis_transform(), ls="none")
            ax.annotate(f"{'0.0' if y == 0 else 'inf'} ({word}) from k = {k}", xy=(k, y),
                        xycoords=ax.get_xaxis_transform(), xytext=(4, 6 if y == 0 else -12),
                        textcoords="offset points", fontsize=7, color=color)
