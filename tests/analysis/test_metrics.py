"""Decay profiles, fitted factors and horizons on series whose answers are known."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import torch

import gradlab
from gradlab.analysis.metrics import decay_profile, fit_decay, horizon, log10_batch_mean


def geometric_log10(T, rho, B=4, spread=1.0):
    """log10 norms[t, b] = log10(scale_b · ρ^(T−1−t)): every sample decays by exactly ρ per step."""
    scales = np.linspace(1.0, spread, B)
    return np.log10(scales)[None, :] + np.arange(T - 1, -1, -1, dtype=float)[:, None] * math.log10(rho)


def test_profile_reads_time_backwards_from_the_loss_step():
    norms = np.arange(1, 13, dtype=float).reshape(6, 2)
    prof = decay_profile(np.log10(norms), norms)
    np.testing.assert_array_equal(prof.distance, np.arange(6))
    np.testing.assert_array_equal(prof.mean, norms[::-1].mean(axis=1))
    np.testing.assert_allclose(prof.log10_mean, np.log10(norms[::-1].mean(axis=1)), rtol=1e-14)
    prof3 = decay_profile(np.log10(norms), norms, loss_step=3)
    np.testing.assert_array_equal(prof3.mean, norms[3::-1].mean(axis=1))
    assert np.all(prof.log10_lo <= prof.log10_mean) and np.all(prof.log10_mean <= prof.log10_hi)
    with pytest.raises(ValueError, match="loss_step"):
        decay_profile(np.log10(norms), loss_step=6)


def test_log10_batch_mean_works_far_outside_float64():
    logs = np.array([[-5000.0, -5000.0 + math.log10(3)], [800.0, 800.0]])
    np.testing.assert_allclose(log10_batch_mean(logs), [-5000 + math.log10(2), 800.0], rtol=1e-14)
    assert log10_batch_mean(np.array([[-np.inf, -np.inf]]))[0] == -np.inf


@settings(max_examples=60, deadline=None)
@given(rho=st.floats(0.05, 3.0), T=st.integers(4, 200))
def test_fit_recovers_the_factor_of_a_geometric_series(rho, T):
    fit = fit_decay(decay_profile(geometric_log10(T, rho, spread=3.0)))
    assert fit.factor == pytest.approx(rho, rel=1e-9)
    assert (fit.first, fit.last) == (1, T - 1)


def test_fit_runs_past_a_plain_underflow_and_stops_at_exact_zeros():
    logs = geometric_log10(3000, 0.5)  # reaches 10^-903: 0.0 in float64
    plain = 10.0 ** logs
    prof = decay_profile(logs, plain)
    assert prof.status[-1] == "underflow" and np.isfinite(prof.log10_mean).all()
    fit = fit_decay(prof)
    assert (fit.first, fit.last) == (1, 2999) and fit.factor == pytest.approx(0.5, rel=1e-12)
    logs[:10] = -np.inf  # exact zeros (a path cut exactly)
    assert fit_decay(decay_profile(logs)).last == 2989


def test_fit_says_why_when_it_cannot_fit():
    fit = fit_decay(decay_profile(geometric_log10(3, 0.5)))
    assert fit.factor is None and "fewer than 3" in fit.reason


def test_overflow_is_reported_not_nan():
    logs = geometric_log10(400, 10.0)  # reaches 10^399: inf in float64
    prof = decay_profile(logs)
    assert not np.isnan(prof.mean).any() and prof.status[-1] == "overflow"
    assert fit_decay(prof).factor == pytest.approx(10.0, rel=1e-12)


@pytest.mark.parametrize("rho,expected", [(0.2, 9), (0.5, 20), (0.9, 132)])
def test_horizon_is_the_first_distance_down_by_a_million(rho, expected):
    # ρ^k ≤ 1e-6  ⇔  k ≥ 6 / −log10 ρ
    assert expected == int(np.ceil(-6 / np.log10(rho) - 1e-12))
    h = horizon(decay_profile(geometric_log10(400, rho)))
    assert h.distance == expected and h.reason == "reached"


def test_horizon_beyond_the_length_says_how_far_it_fell():
    h = horizon(decay_profile(geometric_log10(10, 0.5)))
    assert h.distance is None and "beyond the length" in h.reason and "10^-2.71" in h.reason
    assert "single step" in horizon(decay_profile(np.zeros((1, 3)))).reason
    assert "undefined" in horizon(decay_profile(np.full((4, 2), -np.inf))).reason


def test_the_distance_profile_counts_from_each_samples_own_last_step():
    from gradlab.analysis.metrics import distance_profile

    T, lengths = 6, np.array([6, 3, 4])
    values = np.arange(T, dtype=float)[:, None] * np.array([1.0, 10.0, 100.0])  # log10 = position × scale
    forward = distance_profile(values, lengths, direction=0)
    assert list(forward.distance) == list(range(6))
    # distance k holds position len_b − 1 − k of each sample that has it
    assert forward.log10_lo[5] == forward.log10_hi[5] == 0.0  # only the first sample reaches k = 5
    want_k1 = [4.0, 10.0, 200.0]
    np.testing.assert_allclose(forward.log10_mean[1], np.log10(np.mean(10.0 ** np.array(want_k1))))
    reverse = distance_profile(values, lengths, direction=1)  # ends at position 0: distance k is position k
    np.testing.assert_allclose(reverse.log10_mean[2], np.log10(np.mean(10.0 ** np.array([2.0, 20.0, 200.0]))))
    np.testing.assert_allclose(reverse.log10_mean[3], np.log10(np.mean(10.0 ** np.array([3.0, 300.0]))))


def test_with_equal_lengths_the_distance_profile_is_the_decay_profile():
    from gradlab.analysis.metrics import distance_profile

    rng = np.random.default_rng(0)
    log10 = rng.normal(-5, 2, size=(20, 7))
    a, b = distance_profile(log10, np.full(7, 20)), decay_profile(log10)
    np.testing.assert_allclose(a.log10_mean, b.log10_mean, atol=1e-12)
    np.testing.assert_allclose(a.log10_lo, b.log10_lo)
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-12)


def test_plain_norms_below_the_normal_range_have_their_own_status():
    """A float32 plain sweep keeps subnormal values: norms there have lost digits and say so."""
    torch.manual_seed(0)
    model = gradlab.SRN(2, 16)
    with torch.no_grad():
        model.weight_hh_l0.mul_(0.3)
    x = torch.randn(120, 4, 2)
    plain = gradlab.record(model, x, lambda out: out[-1].sum(), log_domain=False)
    exact = gradlab.record(model, x, lambda out: out[-1].sum())
    norms = plain.grad_norms("h")
    assert ((norms > 0) & (norms < np.finfo(np.float32).tiny)).any()  # the case exists
    prof = gradlab.decay_profile(exact.log10_grad_norms("h"), norms, smallest_normal=plain.smallest_normal)
    subnormal = (prof.mean > 0) & np.array([((norms[::-1][k] > 0) & (norms[::-1][k] < 1.1754944e-38)).any()
                                            for k in range(len(prof.mean))])
    np.testing.assert_array_equal(prof.status == "subnormal", subnormal)
    assert set(prof.status) == {"ok", "subnormal", "underflow"}
    assert "subnormal" not in set(gradlab.decay_profile(exact.log10_grad_norms("h"), norms).status)  # range not given
