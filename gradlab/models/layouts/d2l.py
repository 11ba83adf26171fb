"""d2l's from-scratch parameter lists (seed 001; the educoder exercise, seed 004, uses the same).

RNN:  [W_xh, W_hh, b_h, W_hq, b_q]
LSTM: [W_xi, W_hi, b_i, W_xf, W_hf, b_f, W_xo, W_ho, b_o, W_xc, W_hc, b_c, W_hq, b_q]
with W_x* [I, H], W_h* [H, H], b_* [H]; W_hq [H, Q], b_q [Q] is the output layer, returned and
taken as a separate ``torch.nn.Linear``. d2l's GRU applies the reset gate before the recurrent
product, (r ⊙ h) W_hh, where torch applies it after, r ⊙ (h W_hn + b_hn): the two are different
functions, so there is no exact conversion and none is offered.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from gradlab.models.layouts.common import as_tensor, build_single_layer, split_single_layer
from gradlab.models.recurrent import RecurrentModel

_LSTM_ORDER = ("i", "f", "o", "c")  # d2l's order of gates in the list
_TORCH_OF = {"i": "i", "f": "f", "o": "o", "c": "g"}
_SIZES = {"srn": 5, "lstm": 14}


def from_d2l(params: Sequence, kind: str, batch_first: bool = False) -> tuple[RecurrentModel, nn.Linear]:
    """A one-layer gradlab SRN (tanh) or LSTM and the output layer, from d2l's parameter list.

    batch_first: False (the default) takes time-major inputs [T, B, I], as d2l's ``for X in inputs`` does.
    """
    if kind not in _SIZES:
        raise ValueError(f"d2l layouts: 'srn' (d2l's RNN) and 'lstm'; got {kind!r}"
                         + (" (d2l's GRU resets before the recurrent product; torch's after)" if kind == "gru" else ""))
    if len(params) != _SIZES[kind]:
        raise ValueError(f"d2l {kind} layout: expected {_SIZES[kind]} tensors, got {len(params)}")
    first = as_tensor(params[0])
    ps = [as_tensor(p, first) for p in params]
    if kind == "srn":
        model = build_single_layer("srn", [ps[0]], [ps[1]], [ps[2]], batch_first)
    else:
        by_gate = {g: ps[3 * j: 3 * j + 3] for j, g in enumerate(_LSTM_ORDER)}
        torch_order = [by_gate[g] for g in ("i", "f", "c", "o")]  # torch: i, f, g(=c), o
        model = build_single_layer("lstm", [t[0] for t in torch_order], [t[1] for t in torch_order],
                                   [t[2] for t in torch_order], batch_first)
    W_hq, b_q = ps[-2], ps[-1]
    readout = nn.Linear(W_hq.shape[0], W_hq.shape[1], dtype=W_hq.dtype, device=W_hq.device)
    with torch.no_grad():
        readout.weight.copy_(W_hq.T)
        readout.bias.copy_(b_q)
    return model, readout


def to_d2l(model: RecurrentModel, readout: Optional[nn.Linear] = None) -> list[torch.Tensor]:
    """d2l's parameter list of a one-layer SRN (tanh) or LSTM; W_hq, b_q from ``readout``
    (zeros of one output when None). b_* = bias_ih + bias_hh."""
    if model.kind not in _SIZES or (model.kind == "srn" and model.nonlinearity != "tanh"):
        raise ValueError("d2l layouts: a tanh SRN or an LSTM")
    w_in, w_rec, bias = split_single_layer(model)
    if readout is None:
        W_hq, b_q = w_in[0].new_zeros(model.hidden_size, 1), w_in[0].new_zeros(1)
    else:
        W_hq, b_q = readout.weight.detach().T.clone(), readout.bias.detach().clone()
    if model.kind == "srn":
        return [w_in[0], w_rec[0], bias[0], W_hq, b_q]
    index = {g: j for j, g in enumerate("ifgo")}
    out = []
    for g in _LSTM_ORDER:
        j = index[_TORCH_OF[g]]
        out += [w_in[j], w_rec[j], bias[j]]
    return out + [W_hq, b_q]
