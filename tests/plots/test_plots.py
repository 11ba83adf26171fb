"""Figure conventions that can silently go wrong."""

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from gradlab.analysis.metrics import DecayProfile, fit_decay
from gradlab.plots.decay import decay_figure
from gradlab.plots.style import log10_axis_powers_of_ten, new_figure
from gradlab.plots.training import training_figure


@pytest.mark.parametrize("low, high", [(-0.4, 0.2), (-2.3, 0.1), (-400.0, 3.0)])
def test_log10_axes_are_labelled_at_whole_powers_of_ten_only(low, high):
    fig, (ax,) = new_figure()
    ax.plot([0, 1], [low, high])
    log10_axis_powers_of_ten(ax)
    FigureCanvasAgg(fig).draw()
    lo, hi = ax.get_ylim()
    ticks = [t for t in ax.get_yticks() if lo <= t <= hi]
    assert ticks and all(float(t).is_integer() for t in ticks)
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert len(labels) == len(set(labels))  # no power of ten written twice


def _profile(K: int, factor: float) -> DecayProfile:
    log10 = np.arange(K) * np.log10(factor)
    return DecayProfile(np.arange(K), 10.0 ** log10, log10, log10 - 0.3, log10 + 0.3)


def test_a_single_panel_decay_figures_long_title_stays_inside_the_figure():
    prof = _profile(50, 0.6)
    title = "digit-sum, T = 50, 1 layer(s), H = 32, float32, loss on the last step, at initialisation, seed 0"
    fig = decay_figure({"srn": {"h": prof}}, {"srn": {"h": fit_decay(prof)}}, title=title, dtype="float32")
    FigureCanvasAgg(fig).draw()
    box, inside = fig._suptitle.get_window_extent(), fig.bbox
    assert inside.x0 <= box.x0 and box.x1 <= inside.x1 and box.y1 <= inside.y1
    assert " ".join(fig._suptitle.get_text().split()).startswith(title)  # wrapped, every word kept


def test_training_figure_colours_recorded_steps_along_a_colour_bar_and_names_the_recurrent_weights():
    steps = list(range(0, 200, 10))
    history = {"step": list(range(1, 201)), "loss": [1.0] * 200,
               **{f"grad_norm/model.{p}_l0": [0.5] * 200 for p in ("weight_ih", "weight_hh", "bias_ih")}}
    evals = [{"step": s, "dev_accuracy": 0.1} for s in steps[1:]]
    traces = [{"step": s, "profile": {"h": list(-0.1 * np.arange(10) - s / 1000)}} for s in steps]
    fig = training_figure(history, evals, traces, "accuracy", "a run")
    by_ylabel = {ax.get_ylabel(): ax for ax in fig.axes}
    loss_ax, grad_ax = by_ylabel["loss"], by_ylabel["gradient L2 norm (before clipping)"]
    trace_ax = next(ax for ax in fig.axes if ax.get_xlabel().startswith("distance"))
    assert trace_ax.get_legend() is None and any(ax.get_ylabel() == "training step" for ax in fig.axes)
    colours = {tuple(line.get_color()) for line in trace_ax.get_lines()}
    assert len(colours) == len(traces)  # one per step, along the map
    labels = [t.get_text() for t in grad_ax.get_legend().get_texts()]
    assert "U (recurrent weights)" in labels and "W (input weights)" in labels
    assert {t.get_text() for t in loss_ax.get_legend().get_texts()} == {"training loss (batch)", "dev accuracy"}


def test_a_gradient_of_exactly_zero_is_marked_not_left_as_a_gap():
    from gradlab.plots.training import draw_gradient_norms

    norms = [1.0, 0.0, 2.0, 0.0]
    history = {"step": [1, 2, 3, 4], **{f"grad_norm/model.{p}_l0": norms for p in ("weight_ih", "weight_hh", "bias_ih")}}
    fig, (ax,) = new_figure()
    draw_gradient_norms(ax, history)
    marks = [line for line in ax.get_lines() if line.get_marker() == "|"]
    assert len(marks) == 3 and all(list(m.get_xdata()) == [2, 4] for m in marks)
    assert {m.get_label() for m in marks} == {"W exactly 0", "U exactly 0", "b exactly 0"}
