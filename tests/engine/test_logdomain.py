"""Log-domain BPTT: exact log10 ‖∂L/∂h_t‖ where the plain float64 value is 0.0 or inf."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gradlab
from helpers import MODEL_CONFIGS, make_model
from gradlab.engine.reference import compare
from gradlab.engine.logscale import LOG_ZERO, log10_norm, split_log, to_plain


def linear_srn(rho, H=8, seed=0):
    """A linear SRN with W_hh = ρ·Q, Q orthogonal: ‖∂L/∂h_t‖ = ρ^(T−1−t) ‖∂L/∂h_{T−1}‖ exactly."""
    gen = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(H, H, generator=gen, dtype=torch.float64))
    model = gradlab.SRN(2, H, nonlinearity="linear", bias=False, dtype=torch.float64)
    with torch.no_grad():
        model.weight_hh_l0.copy_(rho * Q)
    return model


@pytest.mark.parametrize("rho,plain_word", [(0.9, "underflow"), (1.1, "overflow")])
def test_linear_srn_decays_by_rho_per_step_past_float64(rho, plain_word):
    T, H = 20_000, 8
    model = linear_srn(rho, H)
    x = torch.zeros(T, 1, 2, dtype=torch.float64)
    grad_out = torch.zeros(T, 1, H, dtype=torch.float64)
    grad_out[-1] = torch.randn(1, H, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    res = gradlab.bptt(model, x, grad_out, log_domain=True)
    log10 = res.log10_grad_norms("h", 0)[:, 0]
    assert np.isfinite(log10).all()
    np.testing.assert_allclose(log10[:-1] - log10[1:], math.log10(rho), atol=1e-9, rtol=0)
    first = res.grad("h", 0)[0].abs().max().item()  # the plain value at t = 0
    assert (first == 0.0) if plain_word == "underflow" else (first == math.inf)
    assert not torch.isnan(res.grad("h", 0)).any()


def test_lstm_with_constant_gates_decays_by_exactly_f():
    """Zero recurrent weights and a constant input: every gate is constant, ∂c_t/∂c_{t−1} = f."""
    T, H = 5000, 3
    model = gradlab.LSTM(1, H, dtype=torch.float64)
    f = 0.5
    with torch.no_grad():
        model.weight_hh_l0.zero_()
        model.weight_ih_l0.zero_()
        model.bias_hh_l0.zero_()
        model.bias_ih_l0.copy_(torch.tensor([0.3] * H + [math.log(f / (1 - f))] * H + [0.2] * H + [0.1] * H))
    x = torch.zeros(T, 2, 1, dtype=torch.float64)
    grad_out = torch.zeros(T, 2, H, dtype=torch.float64)
    grad_out[-1] = 1.0
    res = gradlab.bptt(model, x, grad_out, log_domain=True)
    log10_c = res.log10_grad_norms("c", 0)
    assert np.isfinite(log10_c).all() and res.grad("c", 0)[0].abs().max() == 0.0  # plain underflowed
    np.testing.assert_allclose(log10_c[:-1] - log10_c[1:], math.log10(f), atol=1e-9, rtol=0)


@settings(max_examples=60, deadline=None)
@given(config=st.sampled_from(MODEL_CONFIGS), T=st.integers(1, 30), layers=st.integers(1, 3),
       loss=st.sampled_from(["last", "all"]), with_end=st.booleans(), seed=st.integers(0, 10_000))
def test_log_domain_and_plain_agree_where_both_are_representable(config, T, layers, loss, with_end, seed):
    kind, kwargs = config
    model = make_model(kind, kwargs, num_layers=layers, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(T, 3, 3, generator=gen, dtype=torch.float64)
    g = torch.randn(T, 3, 4, generator=gen, dtype=torch.float64)
    if loss == "last":
        g[:-1] = 0
    end = None
    if with_end:
        parts = [torch.randn(layers, 3, 4, generator=gen, dtype=torch.float64) for _ in model.state_names]
        end = parts[0] if len(parts) == 1 else tuple(parts)
    plain = gradlab.bptt(model, x, g, grad_state=end)
    logd = gradlab.bptt(model, x, g, grad_state=end, log_domain=True)
    bad = [r for r in compare(logd, plain) if not r[2] <= 1e-10]
    assert not bad
    for k in range(layers):
        finite = np.isfinite(plain.log10_grad_norms("h", k))
        np.testing.assert_allclose(logd.log10_grad_norms("h", k)[finite], plain.log10_grad_norms("h", k)[finite],
                                   atol=1e-12, rtol=0)


def test_log_helpers_never_make_nan():
    x = torch.tensor([[0.0, 0.0], [3.0, -4.0]], dtype=torch.float64)
    hat, log = split_log(x)
    assert hat.abs().amax(-1).tolist() == [0.0, 1.0] and log[0] == LOG_ZERO
    assert log10_norm(hat, log)[0] == -math.inf
    assert log10_norm(hat, log)[1].item() == pytest.approx(math.log10(5))
    big = to_plain(hat, torch.tensor([0.0, 1000.0], dtype=torch.float64))
    assert big[0].tolist() == [0.0, 0.0] and big[1].abs().tolist() == [math.inf, math.inf]


@pytest.mark.parametrize("kind,kwargs", MODEL_CONFIGS[:1] + MODEL_CONFIGS[3:])
@pytest.mark.parametrize("batch_first", [False, True])
def test_record_provides_log10_norms_that_match_the_plain_ones(kind, kwargs, batch_first):
    model = make_model(kind, kwargs, num_layers=2, batch_first=batch_first)
    x = torch.randn((3, 9, 3) if batch_first else (9, 3, 3), dtype=torch.float64)
    trace = gradlab.record(model, x, lambda o: o.tanh().pow(2).sum())
    for name in model.state_names:
        for k in range(2):
            np.testing.assert_allclose(trace.log10_grad_norms(name, k), np.log10(trace.grad_norms(name, k)),
                                       atol=1e-12, rtol=0)


def test_record_log10_norms_stay_finite_where_float32_underflows():
    model = gradlab.SRN(2, 2, nonlinearity="linear", bias=False)
    with torch.no_grad():
        model.weight_hh_l0.copy_(0.1 * torch.eye(2))
    trace = gradlab.record(model, torch.ones(80, 1, 2), lambda o: o[-1].sum())
    plain, log10 = trace.grad_norms("h")[:, 0], trace.log10_grad_norms("h")[:, 0]
    assert plain[0] == 0.0 and np.isfinite(log10).all()
    np.testing.assert_allclose(np.diff(log10), 1.0, atol=1e-5)  # ×10 per step towards the loss


@pytest.mark.parametrize("kind", ["srn", "gru", "lstm"])
def test_an_explicit_gradient_far_below_a_carry_that_became_zero_keeps_its_scale(kind):
    """W_hh = 0: the carry is exactly zero after every step. A huge gradient at the last step and a
    tiny one at the step before (e^−92 apart, beyond float32's range of a factor) are both kept: a
    zero carry's log scale is LOG_ZERO, not the huge gradient's (regression: the tiny one read −inf)."""
    torch.manual_seed(0)
    model = {"srn": gradlab.SRN, "gru": gradlab.GRU, "lstm": gradlab.LSTM}[kind](3, 4)
    with torch.no_grad():
        model.weight_hh_l0.zero_()
    if kind == "lstm":  # the cell state carries through f; close the forget gate for an exactly zero carry
        with torch.no_grad():
            model.bias_ih_l0[4:8] = -1e4
    x = torch.randn(4, 2, 3)
    grad_out = torch.zeros(4, 2, 4)
    grad_out[-1], grad_out[-2] = 1e30, 1e-10
    log_domain = gradlab.bptt(model, x, grad_out, log_domain=True).log10_grad_norms("h", 0)
    plain = gradlab.bptt(model, x, grad_out).log10_grad_norms("h", 0)
    assert np.isfinite(plain[-2]).all()
    np.testing.assert_allclose(log_domain[-2:], plain[-2:], rtol=0, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_parameter_gradients_past_overflow_are_inf_or_exact_zero_never_nan(dtype):
    """A linear SRN with W_hh = 10·Q, zero input and biases: h_t stays 0 while ∂L/∂h_t grows ×10 a
    step past float's range. The weights' gradients Σ_t δ_t x_tᵀ and Σ_t δ_t h_{t−1}ᵀ are exactly 0,
    not inf·0 = NaN; the biases' Σ_t δ_t overflows: inf, with the sign of its largest terms."""
    H, T = 4, 400
    Q, _ = torch.linalg.qr(torch.randn(H, H, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    model = gradlab.SRN(2, H, nonlinearity="linear", dtype=dtype)
    with torch.no_grad():
        model.weight_hh_l0.copy_(10 * Q)
        model.bias_ih_l0.zero_()
        model.bias_hh_l0.zero_()
    x = torch.zeros(T, 1, 2, dtype=dtype)
    g = torch.zeros(T, 1, H, dtype=dtype)
    g[-1] = 1.0
    res = gradlab.bptt(model, x, g, log_domain=True)
    grads = res.param_grads
    assert not any(torch.isnan(v).any() for v in grads.values())
    for name in ("weight_ih_l0", "weight_hh_l0"):
        assert torch.equal(grads[name], torch.zeros_like(grads[name]))
    assert torch.isinf(grads["bias_ih_l0"]).all() and torch.equal(grads["bias_ih_l0"], grads["bias_hh_l0"])
    first = res.grad("h", 0)[0, 0]  # δ at t = 0, the largest term of the sum: inf too, with its sign
    assert torch.equal(torch.sign(grads["bias_ih_l0"]), torch.sign(first))
