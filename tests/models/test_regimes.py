import pytest
import torch

import gradlab
from gradlab.models.regimes import initialise, spectral_radius


@pytest.mark.parametrize("kind", ["srn", "lstm", "gru"])
@pytest.mark.parametrize("init", ["default", "orthogonal", "identity", "normal"])
def test_gain_sets_the_spectral_radius_of_every_block(kind, init):
    model = {"srn": gradlab.SRN, "lstm": gradlab.LSTM, "gru": gradlab.GRU}[kind](3, 6, num_layers=2)
    initialise(model, init, gain=1.7, seed=3)
    for k in range(2):
        for block in model.layer_parameters(k)[1].split(6):
            assert spectral_radius(block) == pytest.approx(1.7, rel=1e-5)


def test_orthogonal_and_identity_blocks():
    model = initialise(gradlab.SRN(3, 5), "orthogonal", seed=1)
    w = model.weight_hh_l0.detach()
    torch.testing.assert_close(w @ w.T, torch.eye(5), atol=1e-5, rtol=0)
    irnn = initialise(gradlab.SRN(3, 5, nonlinearity="relu"), "identity")
    assert torch.equal(irnn.weight_hh_l0.detach(), torch.eye(5))
    assert irnn.bias_ih_l0.abs().max() == 0 and irnn.bias_hh_l0.abs().max() == 0


def test_forget_bias_sets_the_total_forget_gate_bias():
    model = initialise(gradlab.LSTM(3, 4), forget_bias=2.5)
    total = (model.bias_ih_l0 + model.bias_hh_l0).detach()
    assert torch.all(total[4:8] == 2.5)
    with pytest.raises(ValueError, match=r"forget gate \(LSTM\)"):
        initialise(gradlab.GRU(3, 4), forget_bias=1.0)


def test_initialise_is_reproducible():
    a = initialise(gradlab.GRU(3, 4), "normal", gain=0.9, seed=5).weight_hh_l0
    b = initialise(gradlab.GRU(3, 4), "normal", gain=0.9, seed=5).weight_hh_l0
    assert torch.equal(a, b)
