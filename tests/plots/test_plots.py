"""Figure conventions that can silently go wrong."""

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from gradlab.plots.style import log10_axis_powers_of_ten, new_figure


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
