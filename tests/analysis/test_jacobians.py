"""Jacobian spectra from one cotangent-block sweep equal a per-t autograd Jacobian."""

import numpy as np
import pytest
import torch

from helpers import make_model
from gradlab.analysis.jacobians import jacobian_spectra
from gradlab.analysis.state_jacobians import flat_step


def naive_spectra(model, x, b, t, T):
    """Singular values of ∂s_{T−1}/∂s_t and ∂s_{T−1}/∂x_t by autograd through the unrolled steps."""
    step = flat_step(model)
    S = model.num_layers * len(model.state_names) * model.hidden_size
    s = torch.zeros(S, dtype=x.dtype)
    with torch.no_grad():
        for u in range(t):
            s = step(s, x[u, b])
    s_before = s.clone()

    def final_from_state(s_t):
        for u in range(t + 1, T):
            s_t = step(s_t, x[u, b])
        return s_t

    def final_from_input(x_t):
        return final_from_state(step(s_before, x_t))

    s_t = step(s_before, x[t, b]).detach()
    js = torch.autograd.functional.jacobian(final_from_state, s_t)
    jx = torch.autograd.functional.jacobian(final_from_input, x[t, b])
    return torch.linalg.svdvals(js).numpy(), torch.linalg.svdvals(jx).numpy()


@pytest.mark.parametrize("kind", ["srn", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
def test_sweep_equals_autograd_per_t(kind, layers):
    model = make_model(kind, {}, num_layers=layers, hidden_size=3)
    T = 7
    x = torch.randn(T, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    spectra = jacobian_spectra(model, x, full=True)
    S = layers * len(model.state_names) * 3
    assert spectra.state.shape == (T, 2, S) and spectra.input.shape == (T, 2, 3)
    for t in (0, 3, T - 1):
        for b in range(2):
            want_s, want_x = naive_spectra(model, x, b, t, T)
            k = T - 1 - t
            np.testing.assert_allclose(spectra.state[k, b], want_s, atol=1e-12, rtol=1e-10)
            np.testing.assert_allclose(spectra.input[k, b], want_x, atol=1e-12, rtol=1e-10)


def test_largest_and_smallest_are_kept_by_default():
    model = make_model("lstm", {}, hidden_size=4)
    x = torch.randn(20, 1, 3, dtype=torch.float64)
    full = jacobian_spectra(model, x, full=True)
    lean = jacobian_spectra(model, x)
    np.testing.assert_allclose(lean.largest(), full.state[..., 0], rtol=1e-12)
    np.testing.assert_allclose(lean.smallest(), full.state[..., -1], rtol=1e-12)
    assert np.all(np.diff(full.largest()[:, 0])[5:] < 0)  # an LSTM at init contracts
