"""Decay profiles, fitted factors and horizons on series whose answers are known."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradlab.metrics import decay_profile, fit_decay, horizon


def geometric(T, rho, B=4, spread=1.0):
    """norms[t, b] = scale_b · ρ^(T−1−t): every sample decays by exactly ρ per step back."""
    scales = np.linspace(1.0, spread, B)
    return scales[None, :] * rho ** np.arange(T - 1, -1, -1, dtype=float)[:, None]


def test_profile_reads_time_backwards_from_the_loss_step():
    norms = np.arange(12, dtype=float).reshape(6, 2)
    prof = decay_profile(norms)
    np.testing.assert_array_equal(prof.distance, np.arange(6))
    np.testing.assert_array_equal(prof.mean, norms[::-1].mean(axis=1))
    prof3 = decay_profile(norms, loss_step=3)
    np.testing.assert_array_equal(prof3.mean, norms[3::-1].mean(axis=1))
    assert np.all(prof.lo <= prof.mean) and np.all(prof.mean <= prof.hi)
    with pytest.raises(ValueError, match="loss_step"):
        decay_profile(norms, loss_step=6)


@settings(max_examples=60, deadline=None)
@given(rho=st.floats(0.05, 3.0), T=st.integers(4, 200))
def test_fit_recovers_the_factor_of_a_geometric_series(rho, T):
    prof = decay_profile(geometric(T, rho, spread=3.0))
    fit = fit_decay(prof)
    assert fit.factor == pytest.approx(rho, rel=1e-9)
    assert (fit.first, fit.last) == (1, T - 1)


def test_fit_stops_where_the_gradient_underflows():
    norms = geometric(50, 0.5)
    norms[:10] = 0.0  # the earliest ten steps underflowed
    prof = decay_profile(norms)
    fit = fit_decay(prof)
    assert (fit.first, fit.last) == (1, 39)
    assert fit.factor == pytest.approx(0.5, rel=1e-12)
    assert list(prof.status[38:42]) == ["ok", "ok", "underflow", "underflow"]


def test_fit_says_why_when_it_cannot_fit():
    fit = fit_decay(decay_profile(geometric(3, 0.5)))
    assert fit.factor is None and "fewer than 3" in fit.reason


def test_overflow_is_reported_not_nan():
    norms = geometric(20, 10.0)
    norms[:5] = np.inf
    prof = decay_profile(norms)
    assert not np.isnan(prof.mean).any()
    assert prof.status[-1] == "overflow"
    assert fit_decay(prof).last == 14


@pytest.mark.parametrize("rho,expected", [(0.2, 9), (0.5, 20), (0.9, 132)])
def test_horizon_is_the_first_distance_down_by_a_million(rho, expected):
    # ρ^k ≤ 1e-6  ⇔  k ≥ 6 / −log10 ρ
    assert expected == int(np.ceil(-6 / np.log10(rho) - 1e-12))
    h = horizon(decay_profile(geometric(400, rho)))
    assert h.distance == expected and h.reason == "reached"


def test_horizon_beyond_the_length_says_how_far_it_fell():
    h = horizon(decay_profile(geometric(10, 0.5)))
    assert h.distance is None and "beyond the length" in h.reason and "0.00195" in h.reason
    assert "single step" in horizon(decay_profile(np.ones((1, 3)))).reason
    assert "undefined" in horizon(decay_profile(np.zeros((4, 2)))).reason
