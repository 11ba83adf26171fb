"""Course layouts: the NNDL book's and d2l's from-scratch parameters, and torch's cells.

The reference forward passes below are written from the course code (seeds 000, 001, 004) in
their own layout; gradlab's model built from the same parameters must compute the same thing.
"""

import pytest
import torch
from torch import nn

import gradlab
from helpers import make_model

DT = torch.float64


def nndl_srn_forward(p, x):  # book 6.1.2: h = tanh(x W + h U + b); x: [B, T, I]
    h = torch.zeros(x.shape[0], p["U"].shape[0], dtype=DT)
    outs = []
    for t in range(x.shape[1]):
        h = torch.tanh(x[:, t] @ p["W"] + h @ p["U"] + p["b"])
        outs.append(h)
    return torch.stack(outs, 1)


def nndl_lstm_forward(p, x):  # book 6.3.1.1 (seed 000)
    B, T, _ = x.shape
    h = c = torch.zeros(B, p["U_i"].shape[0], dtype=DT)
    outs = []
    for t in range(T):
        s = x[:, t]
        i = torch.sigmoid(s @ p["W_i"] + h @ p["U_i"] + p["b_i"])
        f = torch.sigmoid(s @ p["W_f"] + h @ p["U_f"] + p["b_f"])
        o = torch.sigmoid(s @ p["W_o"] + h @ p["U_o"] + p["b_o"])
        c_tilde = torch.tanh(s @ p["W_c"] + h @ p["U_c"] + p["b_c"])
        c = f * c + i * c_tilde
        h = o * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs, 1)


def d2l_lstm_forward(params, x):  # d2l 9.2 from scratch (seed 001); x: [T, B, I]
    W_xi, W_hi, b_i, W_xf, W_hf, b_f, W_xo, W_ho, b_o, W_xc, W_hc, b_c, W_hq, b_q = params
    H = C = torch.zeros(x.shape[1], W_hi.shape[0], dtype=DT)
    outs, ys = [], []
    for X in x:
        I = torch.sigmoid(X @ W_xi + H @ W_hi + b_i)
        F = torch.sigmoid(X @ W_xf + H @ W_hf + b_f)
        O = torch.sigmoid(X @ W_xo + H @ W_ho + b_o)
        C_tilda = torch.tanh(X @ W_xc + H @ W_hc + b_c)
        C = F * C + I * C_tilda
        H = O * torch.tanh(C)
        outs.append(H)
        ys.append(H @ W_hq + b_q)
    return torch.stack(outs), torch.stack(ys)


def d2l_rnn_forward(params, x):  # d2l / educoder RNN (seed 004)
    W_xh, W_hh, b_h, W_hq, b_q = params
    H = torch.zeros(x.shape[1], W_hh.shape[0], dtype=DT)
    outs = []
    for X in x:
        H = torch.tanh(X @ W_xh + H @ W_hh + b_h)
        outs.append(H)
    return torch.stack(outs)


def randn(*shape, seed=[0]):
    seed[0] += 1
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed[0]), dtype=DT)


def nndl_params(kind, I=3, H=4):
    if kind == "srn":
        return {"W": randn(I, H), "U": randn(H, H), "b": randn(1, H)}
    return {f"{m}_{g}": randn(*shape) for g in "ifoc"
            for m, shape in (("W", (I, H)), ("U", (H, H)), ("b", (1, H)))}


@pytest.mark.parametrize("kind,forward", [("srn", nndl_srn_forward), ("lstm", nndl_lstm_forward)])
def test_nndl_parameters_give_the_books_function_on_the_books_layout(kind, forward):
    """The book's layers take [B, T, I]: its tensor of shape [2, 7, 3] is 2 sequences of 7 steps.
    (Run time-major it would be 7 sequences of 2 steps with an output of the same shape.)"""
    p = nndl_params(kind)
    model = gradlab.from_nndl(p, kind)
    assert model.batch_first
    x = randn(2, 7, 3)
    want = forward(p, x)
    torch.testing.assert_close(model(x)[0], want, atol=1e-13, rtol=0)
    time_major = gradlab.from_nndl(p, kind, batch_first=False)
    torch.testing.assert_close(time_major(x.transpose(0, 1))[0], want.transpose(0, 1), atol=1e-13, rtol=0)


@pytest.mark.parametrize("kind", ["srn", "lstm"])
def test_nndl_round_trips_are_exact(kind):
    p = nndl_params(kind)
    back = gradlab.to_nndl(gradlab.from_nndl(p, kind))
    assert back.keys() == p.keys()
    for name in p:
        assert torch.equal(back[name], p[name]), name
    # gradlab → NNDL → gradlab: the same function (the two torch biases are summed into one)
    model = make_model(kind, {}, input_size=3, hidden_size=4)
    again = gradlab.from_nndl(gradlab.to_nndl(model), kind, batch_first=False)
    x = randn(5, 2, 3)
    torch.testing.assert_close(again(x)[0], model(x)[0], atol=1e-14, rtol=0)


def test_d2l_lstm_parameters_give_d2ls_function_and_output_layer():
    I, H, Q = 3, 4, 5
    params = []
    for _ in range(4):
        params += [randn(I, H), randn(H, H), randn(H)]
    params += [randn(H, Q), randn(Q)]
    model, readout = gradlab.from_d2l(params, "lstm")
    x = randn(6, 2, I)
    want_h, want_y = d2l_lstm_forward(params, x)
    out = model(x)[0]
    torch.testing.assert_close(out, want_h, atol=1e-13, rtol=0)
    torch.testing.assert_close(readout(out), want_y, atol=1e-13, rtol=0)
    back = gradlab.to_d2l(model, readout)
    assert len(back) == 14 and all(torch.equal(a, b) for a, b in zip(back, params))


def test_d2l_rnn_round_trip_and_function():
    params = [randn(3, 4), randn(4, 4), randn(4), randn(4, 2), randn(2)]
    model, readout = gradlab.from_d2l(params, "srn")
    x = randn(5, 2, 3)
    torch.testing.assert_close(model(x)[0], d2l_rnn_forward(params, x), atol=1e-13, rtol=0)
    assert all(torch.equal(a, b) for a, b in zip(gradlab.to_d2l(model, readout), params))


@pytest.mark.parametrize("cell_cls,kwargs", [(nn.RNNCell, {"nonlinearity": "tanh"}), (nn.RNNCell, {"nonlinearity": "relu"}),
                                             (nn.LSTMCell, {}), (nn.GRUCell, {})])
@pytest.mark.parametrize("bias", [True, False])
def test_torch_cells_convert_both_ways(cell_cls, kwargs, bias):
    torch.manual_seed(0)
    cell = cell_cls(3, 4, bias=bias, dtype=DT, **kwargs)
    model = gradlab.from_torch(cell)
    assert model.num_layers == 1
    x = randn(6, 2, 3)
    state = None
    outs = []
    for xt in x:
        state = cell(xt, state)
        outs.append(state[0] if isinstance(state, tuple) else state)
    torch.testing.assert_close(model(x)[0], torch.stack(outs), atol=1e-13, rtol=0)
    back = gradlab.to_torch_cell(model)
    assert type(back) is cell_cls
    assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(), cell.state_dict().values()))


def test_layout_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match="reset"):
        gradlab.from_d2l([randn(2, 2)] * 11, "gru")
    with pytest.raises(ValueError, match="expected 14"):
        gradlab.from_d2l([randn(2, 2)] * 5, "lstm")
    with pytest.raises(KeyError, match="missing U_f"):
        p = nndl_params("lstm")
        del p["U_f"]
        gradlab.from_nndl(p, "lstm")
    with pytest.raises(ValueError, match="one layer"):
        gradlab.to_nndl(gradlab.LSTM(3, 4, num_layers=2))
    with pytest.raises(ValueError, match="one layer"):
        gradlab.to_torch_cell(gradlab.GRU(3, 4, num_layers=2))
    with pytest.raises(ValueError, match="tanh"):
        gradlab.to_nndl(gradlab.SRN(3, 4, nonlinearity="relu"))
