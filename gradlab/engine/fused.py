"""The forward pass by torch's fused kernels, one layer at a time, for the hand-derived sweeps.

torch computes a whole layer's forward in one fused call (``torch.lstm``, ``torch.gru``,
``torch.rnn_tanh``, ``torch.rnn_relu``: what ``nn.LSTM``/``nn.GRU``/``nn.RNN`` call) far faster
than a Python loop over steps. Its output is every h_t of the layer; the architecture's
``tape_from_states`` rebuilds the rest of the tape from them in batched operations (the same
equations as the step). The linear SRN, which torch lacks, has no fused call: its layers run the
architecture's own eager ``forward_sweep``.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from gradlab.models.layout import Packing
from gradlab.models.recurrent import RecurrentModel

#: torch's fused functions by (architecture, SRN nonlinearity)
FUSED: dict[tuple[str, Optional[str]], Callable] = {
    ("lstm", None): torch.lstm, ("gru", None): torch.gru,
    ("srn", "tanh"): torch.rnn_tanh, ("srn", "relu"): torch.rnn_relu,
}


def fused_function(model: RecurrentModel) -> Optional[Callable]:
    """torch's fused function for ``model``'s architecture, or None (the linear SRN)."""
    return FUSED.get((model.kind, model.architecture.options().get("nonlinearity")))


def layer_weights(model: RecurrentModel, k: int) -> list[torch.Tensor]:
    """Layer k's weights in torch's flat order: per direction w_ih, w_hh[, b_ih, b_hh][, w_hr]."""
    weights = []
    for d in range(model.num_directions):
        w_ih, w_hh, b_ih, b_hh = model.layer_parameters(k, d)
        weights += [w_ih, w_hh] + ([b_ih, b_hh] if model.bias else []) + list(model.extra_weights(k, d).values())
    return weights


def fused_layer(model: RecurrentModel, k: int, seq: torch.Tensor, init: tuple[torch.Tensor, ...],
                packing: Optional[Packing] = None) -> torch.Tensor:
    """Layer k's output [T, B, D·H] (time-major, input order, zero past each sample's length) by
    torch's fused kernel. seq: [T, B, in]; init: the layer's initial state, one [D, B, ·] per state
    name. The caller holds no_grad (and autocast off) as it needs."""
    fn = fused_function(model)
    hx = list(init) if len(init) > 1 else init[0]
    args = (layer_weights(model, k), model.bias, 1, 0.0, False, model.bidirectional)
    if packing is None:
        return fn(seq, hx, *args, False)[0]
    data = packing.pack(seq).data
    if packing.sorted_indices is not None:  # torch's packed kernels take the state in sorted order
        order = packing.sorted_indices.to(seq.device)
        hx = [h.index_select(1, order) for h in hx] if isinstance(hx, list) else hx.index_select(1, order)
    out = fn(data, packing.batch_sizes, hx, *args)[0]
    packed = PackedSequence(out, packing.batch_sizes, packing.sorted_indices, packing.unsorted_indices)
    return pad_packed_sequence(packed, total_length=seq.shape[0])[0]
