"""Theory next to measurement: Lyapunov exponents, the Pascanu bound, forget-gate products."""

import math

import numpy as np
import pytest
import torch

import gradlab
from helpers import make_model
from gradlab.analysis.theory import lyapunov_exponents, pascanu_bound


def fixed_linear_srn(H=5, seed=0):
    """A linear SRN whose Jacobian is one fixed, non-normal W_hh with well-separated |eigenvalues|."""
    gen = torch.Generator().manual_seed(seed)
    P = torch.randn(H, H, generator=gen, dtype=torch.float64)
    D = torch.diag(torch.tensor([1.3, -0.9, 0.7, 0.4, -0.2], dtype=torch.float64)[:H])
    W = P @ D @ torch.linalg.inv(P)
    model = gradlab.SRN(2, H, nonlinearity="linear", dtype=torch.float64)
    with torch.no_grad():
        model.weight_hh_l0.copy_(W)
    return model, W


def test_a_fixed_linear_maps_exponents_are_the_log_moduli_of_its_eigenvalues():
    model, W = fixed_linear_srn()
    x = torch.randn(3000, 2, 2, dtype=torch.float64)  # the input does not change a linear map's Jacobian
    exps = lyapunov_exponents(model, x)
    want = np.sort(np.log(np.abs(np.linalg.eigvals(W.numpy()))))[::-1]
    np.testing.assert_allclose(exps, np.broadcast_to(want, exps.shape), atol=2e-3)
    # the sum is exact at any T: Σ ln|R_ii| = ln|det W^T|
    np.testing.assert_allclose(exps.sum(axis=1), math.log(abs(np.linalg.det(W.numpy()))), atol=1e-10)
    assert lyapunov_exponents(model, x[:, 0], k=2).shape == (2,)


@pytest.mark.parametrize("kind", ["srn", "lstm", "gru"])
def test_exponents_for_every_model_and_layer_count(kind):
    model = make_model(kind, {}, num_layers=2, hidden_size=3)
    x = torch.randn(200, 2, 3, dtype=torch.float64)
    exps = lyapunov_exponents(model, x, k=4)
    S = 2 * 3 * (2 if kind == "lstm" else 1)
    assert exps.shape == (2, 4) and np.all(np.diff(exps, axis=1) <= 0)
    full = lyapunov_exponents(model, x)
    assert full.shape == (2, S)
    np.testing.assert_allclose(full[:, :4], exps, atol=1e-10)


@pytest.mark.parametrize("kind", ["srn", "lstm", "gru"])
def test_the_derived_and_the_autograd_jacobian_paths_agree(kind):
    """One layer uses the derived step Jacobians; a stack uses jacrev. A stack whose upper layer
    ignores the lower one (zero W_ih) must give the lower layer's exponents among its own."""
    from gradlab.analysis.state_jacobians import flat_step, state_jacobians
    from torch.func import jacrev, vmap

    model = make_model(kind, {}, hidden_size=3)
    x = torch.randn(30, 2, 3, dtype=torch.float64)
    S = 3 * len(model.state_names)
    s = 0.3 * torch.randn(2, S, dtype=torch.float64)
    step = flat_step(model)
    for t, J in enumerate(state_jacobians(model, x, s)):
        torch.testing.assert_close(J, vmap(jacrev(step))(s, x[t]), atol=1e-12, rtol=1e-10)
        s = vmap(step)(s, x[t])


def test_lyapunov_exponent_predicts_the_measured_decay_of_a_tanh_srn():
    torch.manual_seed(0)
    model = gradlab.SRN(4, 16, dtype=torch.float64)
    x = torch.randn(3000, 1, 4, dtype=torch.float64)
    lam = lyapunov_exponents(model, x, k=1)[0, 0]
    g = torch.zeros(3000, 1, 16, dtype=torch.float64)
    g[-1] = 1.0
    log10 = gradlab.bptt(model, x, g, log_domain=True).log10_grad_norms("h", 0)[:, 0]
    measured = (log10[100] - log10[-1001]) / (len(log10) - 1001 - 100)  # log10 per step, far from the ends
    assert measured == pytest.approx(lam / math.log(10), abs=0.02)


def test_pascanu_bound_holds_for_the_measured_factor():
    torch.manual_seed(1)
    model = gradlab.SRN(4, 16, dtype=torch.float64)
    b = pascanu_bound(model)
    assert b["bound_per_step"] >= b["spectral_radius"] > 0
    x = torch.randn(500, 2, 4, dtype=torch.float64)
    g = torch.zeros(500, 2, 16, dtype=torch.float64)
    g[-1] = 1.0
    log10 = gradlab.bptt(model, x, g, log_domain=True).log10_grad_norms("h", 0)
    per_step = (log10[:-1] - log10[1:]).max().item()  # the largest ‖δh_t‖ / ‖δh_{t+1}‖ seen, in log10
    assert 10**per_step <= b["bound_per_step"]
    with pytest.raises(ValueError, match="SRN"):
        pascanu_bound(gradlab.LSTM(3, 4))


def test_forget_gate_product_predicts_an_lstm_with_constant_gates_exactly():
    """W_hh = 0 and a constant input: the forget gates are one constant f, and the measured
    ‖∂L/∂c_t‖ follows the running product of forget gates exactly."""
    from gradlab.engine.checkpointed import checkpointed_norms
    from gradlab.analysis.predictions import forget_gate_curve, predictions

    T, H = 400, 3
    model = gradlab.LSTM(2, H, dtype=torch.float64)
    with torch.no_grad():
        model.weight_hh_l0.zero_()
    x = torch.ones(T, 2, 2, dtype=torch.float64)
    forget = np.zeros(T)

    def keep(t0, t1, tapes):
        forget[t0:t1] = model.architecture.forget_gates(tapes[-1]).log10().mean(dim=(1, 2)).numpy()

    def explicit(t0, t1, out):
        g = torch.zeros_like(out)
        if t1 == T:
            g[-1] = 1.0
        return g

    # one forget gate value for every unit (with unequal ones the norm follows the largest f,
    # while the prediction uses their geometric mean)
    with torch.no_grad():
        model.weight_ih_l0[H:2 * H] = 0.0
        model.bias_ih_l0[H:2 * H] = 0.7
        model.bias_hh_l0[H:2 * H] = 0.0
    res = checkpointed_norms(model, lambda a, b: x[a:b], explicit, T, 2, progress=False, on_forward=keep)
    measured = res.log10_grad_norms("c", 0)[::-1, 0]  # distance 0 first
    curve = forget_gate_curve(forget, measured[0])
    np.testing.assert_allclose(curve[1:], measured[1:], atol=1e-9)
    p = predictions(model, x[:50], forget)
    assert p["forget_gates"]["factor_per_step"] == pytest.approx(torch.sigmoid(torch.tensor(0.7, dtype=torch.float64)).item(), rel=1e-12)
    assert "pascanu_bound" not in p and p["lyapunov"]["unit"] == "natural log per step"
