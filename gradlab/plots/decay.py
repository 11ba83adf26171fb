"""The decay figure: ‖∂L/∂h_t‖ (and ‖∂L/∂c_t‖) against distance, one colour per model.

The y axis holds log10 of the norms (labelled as powers of ten), so the curve goes on where the
run's dtype has underflowed to 0.0 or overflowed to inf; where that happens a dotted vertical line
marks it.
"""

from __future__ import annotations

from typing import Mapping, Optional

import numpy as np
from matplotlib.figure import Figure

from gradlab.analysis.metrics import BAND_PERCENTILES, DecayFit, DecayProfile
from gradlab.plots.style import MODEL_COLORS, MODEL_LABELS, figure_title, log10_axis_powers_of_ten, new_figure

STATE_TITLES = {"h": r"$\|\partial L/\partial h_t\|$", "c": r"$\|\partial L/\partial c_t\|$"}
PANEL_TITLES = {"h": "hidden state $h_t$", "c": "cell state $c_t$ (LSTM)"}
PREDICTION_STYLES = ("--", "-.", (0, (1, 1)))
#: Longer profiles are drawn at about this many evenly spaced distances (the data files keep all).
MAX_POINTS = 20_000


def _thin(n: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, MAX_POINTS)).round().astype(int))


def decay_figure(
    profiles: Mapping[str, Mapping[str, DecayProfile]],
    fits: Mapping[str, Mapping[str, DecayFit]],
    title: str = "",
    dtype: str = "",
    predicted: Optional[Mapping[str, Mapping[str, list]]] = None,
) -> Figure:
    """profiles[model][state] and fits[model][state] → one panel per state ("h", then "c").

    Each model: its batch mean (line), the percentile band, and the fitted decay factor in the
    legend; a dotted line where the plain value in ``dtype`` first is 0.0 (underflow) or inf.
    predicted[model][state]: (label, log10 values against distance) drawn thin and dashed.
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
            idx = _thin(len(prof.distance))
            d = prof.distance[idx]
            finite = lambda v: np.where(np.isfinite(v), v, np.nan)  # noqa: E731
            ax.plot(d, finite(prof.log10_mean[idx]), color=color, lw=1.6, label=label)
            ax.fill_between(d, finite(prof.log10_lo[idx]), finite(prof.log10_hi[idx]), color=color, alpha=0.2, lw=0)
            for (label, values), style in zip((predicted or {}).get(model, {}).get(state, []), PREDICTION_STYLES):
                ax.plot(d, values[idx], color=color, lw=0.9, ls=style, alpha=0.8,
                        label=f"{MODEL_LABELS[model]} predicted: {label}")
            _mark_trouble(ax, prof, color, dtype)
        log10_axis_powers_of_ten(ax, "y")
        ax.set_xlabel("distance from the step the loss reads, $k = t_{loss} - t$ (steps)")
        ax.set_ylabel(f"{STATE_TITLES[state]} (batch mean)")
        ax.set_title(PANEL_TITLES[state])
        ax.set_xlim(0, max(len(p[state].distance) - 1 for p in profiles.values() if state in p) or 1)
        ax.legend(loc="best", fontsize=8)
    note = f"line: batch mean of per-sample norms; band: {lo_pct:g}th–{hi_pct:g}th percentile over the batch"
    figure_title(fig, f"{title}\n{note}" if title else note)
    return fig


def _mark_trouble(ax, prof: DecayProfile, color, dtype: str) -> None:
    """A dotted vertical line where the plain mean first is 0.0 (underflow) or inf (overflow)."""
    for word, where, text in (("underflow", prof.mean == 0, "0.0"), ("overflow", ~np.isfinite(prof.mean), "inf")):
        idx = np.flatnonzero(where)
        if idx.size:
            k = int(prof.distance[idx[0]])
            ax.axvline(k, color=color, ls=":", lw=1.2)
            ax.annotate(f"{dtype + ' ' if dtype else ''}{text} ({word}) from k = {k}", xy=(k, 0.02),
                        xycoords=ax.get_xaxis_transform(), xytext=(3, 0), textcoords="offset points",
                        fontsize=7, color=color, rotation=90, va="bottom")


def explicit_and_total_figure(distance: np.ndarray, log10_total: Mapping[str, np.ndarray],
                              log10_explicit: Mapping[str, np.ndarray], title: str = "") -> Figure:
    """Per model: the total ∂L/∂h_t (line) beside the explicit part ∂⁺L/∂h_t, the gradient that
    reaches h_t from the loss directly (dots; none where the loss does not read step t), both as log10
    of the batch mean against distance [K]. An exact zero (−inf) is not drawn."""
    fig, (ax,) = new_figure()
    finite = lambda v: np.where(np.isfinite(v), v, np.nan)  # noqa: E731
    for model, total in log10_total.items():
        color = MODEL_COLORS[model]
        ax.plot(distance, finite(np.asarray(total, dtype=float)), color=color, lw=1.6,
                label=rf"{MODEL_LABELS[model]}: total $\partial L/\partial h_t$")
        explicit = finite(np.asarray(log10_explicit[model], dtype=float))
        if np.isfinite(explicit).any():
            ax.plot(distance, explicit, "o", color=color, ms=4, mfc="none",
                    label=rf"{MODEL_LABELS[model]}: explicit $\partial^+ L/\partial h_t$")
    log10_axis_powers_of_ten(ax, "y")
    ax.set_xlabel("distance from the step the loss reads, $k = t_{loss} - t$ (steps)")
    ax.set_ylabel(r"$\|\partial L/\partial h_t\|$ (batch mean)")
    if len(distance) == 1:
        ax.set_xlim(-0.5, 0.5)
    if ax.get_lines():
        ax.legend(loc="best", fontsize=8)
    figure_title(fig, title or "total gradient and the part the loss gives each step directly")
    return fig
