"""A projected LSTM (torch's proj_size): h_t = W_hr (o ⊙ tanh c_t) is [B, P], c_t stays [B, H].
bptt's hand-derived sweep (plain and log domain, eq. LSTM-back-m) against the autograd twin, and
record against bptt, on padded and packed batches with gradients on h_n and c_n."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import gradlab
from gradlab.engine.reference import autograd_reference, compare

DT = torch.float64


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("log_domain", [False, True], ids=["plain", "log"])
def test_bptt_of_a_projected_lstm_equals_autograd(bidirectional, packed, log_domain):
    torch.manual_seed(0)
    model = gradlab.LSTM(3, 5, num_layers=2, proj_size=2, bidirectional=bidirectional, dtype=DT)
    D = model.num_directions
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(6, 4, 3, generator=gen, dtype=DT)
    lengths = torch.tensor([6, 2, 5, 1])
    if packed:
        x = pack_padded_sequence(x, lengths, enforce_sorted=False)
        g_out = x._replace(data=torch.randn(x.data.shape[0], D * 2, generator=gen, dtype=DT))
    else:
        g_out = torch.randn(6, 4, D * 2, generator=gen, dtype=DT)
    g_state = (torch.randn(2 * D, 4, 2, generator=gen, dtype=DT), torch.randn(2 * D, 4, 5, generator=gen, dtype=DT))
    got = gradlab.bptt(model, x, g_out, grad_state=g_state, log_domain=log_domain)
    want = autograd_reference(model, x, g_out, grad_state=g_state)
    assert {"weight_hr_l0", "weight_hr_l1"} <= set(got.param_grads)
    for name, err, rel in compare(got, want):
        assert rel <= 1e-12, (name, err, rel)
    assert got.grad("h", 1, 0).shape == (6, 4, 2) and got.grad("c", 1, 0).shape == (6, 4, 5)


def test_record_of_a_projected_torch_lstm_gives_exact_log10_norms():
    module = nn.LSTM(3, 6, num_layers=2, proj_size=3, dtype=DT)
    x = torch.randn(40, 2, 3, generator=torch.Generator().manual_seed(2), dtype=DT)
    trace = gradlab.record(module, x, lambda out, final: out[-1].sum() + final[1].pow(2).sum())
    for name in ("h", "c"):
        for k in range(2):
            np.testing.assert_allclose(trace.log10_grad_norms(name, k), np.log10(trace.grad_norms(name, k)),
                                       atol=1e-10)
    assert trace.grad("h", 0).shape == (40, 2, 3) and trace.grad("c", 0).shape == (40, 2, 6)


def test_what_a_projection_does_not_support_is_refused():
    model = gradlab.LSTM(3, 5, proj_size=2, dtype=DT)
    with pytest.raises(ValueError, match="projected LSTM"):
        gradlab.checkpointed_norms(model, lambda t0, t1: torch.zeros(t1 - t0, 1, 3, dtype=DT),
                                   lambda t0, t1, out: torch.zeros_like(out), 4, 1, progress=False)
    with pytest.raises(ValueError, match="projected LSTM"):
        gradlab.lyapunov_exponents(model, torch.zeros(4, 1, 3, dtype=DT))
