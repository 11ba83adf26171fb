"""The watch figures draw data, never a model, also all-zero, underflowed and single-step data."""

import numpy as np
import pytest

from gradlab.analysis.metrics import distance_profile, fit_decay
from gradlab.plots.watch import decay_curves_through_training_figure, decay_through_training_figure, step_decay_figure


@pytest.mark.parametrize("log10", [np.linspace(0, -400, 50)[:, None].repeat(3, 1),  # far past float64
                                   np.full((20, 2), -np.inf),  # all exactly zero
                                   np.zeros((1, 4))],  # a single step
                         ids=["underflowed", "all-zero", "single-step"])
def test_the_figures_draw_whatever_the_data(log10):
    lengths = np.full(log10.shape[1], log10.shape[0])
    profile = distance_profile(log10, lengths)
    fig = step_decay_figure({"rnn h, layer 0": profile}, {"rnn h, layer 0": fit_decay(profile)}, title="step 0")
    ax = fig.axes[0]
    assert "distance" in ax.get_xlabel() and ax.get_ylabel()
    heat = decay_through_training_figure([0, 10], [profile.log10_mean, profile.log10_mean[:1]], title="through")
    assert len(heat.axes) == 2  # the heatmap and its colour bar
    curves = decay_curves_through_training_figure([0, 10], [profile, profile], title="curves")
    assert curves.axes[1].get_ylabel() == "training step"  # the colour bar says what the colour is
    curves.savefig(__import__("io").BytesIO(), format="png")
    fig.savefig(__import__("io").BytesIO(), format="png")
    heat.savefig(__import__("io").BytesIO(), format="png")
