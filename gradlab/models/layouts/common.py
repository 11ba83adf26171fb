"""Shared pieces of the layout converters: stacking per-gate matrices into torch's blocks."""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

from gradlab.models.recurrent import RecurrentModel, build_model


def as_tensor(value, like: torch.Tensor | None = None) -> torch.Tensor:
    t = torch.as_tensor(value)
    if like is not None:
        t = t.to(like)
    return t.detach().clone()


def build_single_layer(kind: str, w_in: Sequence[torch.Tensor], w_rec: Sequence[torch.Tensor],
                       bias: Sequence[torch.Tensor], batch_first: bool, nonlinearity: str = "tanh") -> RecurrentModel:
    """A one-layer model from per-gate matrices in torch's gate order, in the row-vector layout
    of the courses: w_in[g]: [I, H] (x W), w_rec[g]: [H, H] (h U), bias[g]: [H] or [1, H].
    ``batch_first``: the input layout the model takes, the course's own.

    torch computes x W_ihᵀ, so each block is the transpose; the course's single bias becomes
    bias_ih, and bias_hh is zero.
    """
    I, H = w_in[0].shape
    dtype = w_in[0].dtype if w_in[0].is_floating_point() else torch.get_default_dtype()
    model = build_model(kind, I, H, nonlinearity=nonlinearity, batch_first=batch_first, dtype=dtype,
                        device=w_in[0].device)
    with torch.no_grad():
        model.weight_ih_l0.copy_(torch.cat([w.T for w in w_in]))
        model.weight_hh_l0.copy_(torch.cat([u.T for u in w_rec]))
        model.bias_ih_l0.copy_(torch.cat([b.reshape(H) for b in bias]))
        model.bias_hh_l0.zero_()
    return model


def split_single_layer(model: RecurrentModel) -> tuple[list, list, list]:
    """The inverse view: per-gate (w_in [I, H], w_rec [H, H], bias [H]) in torch's gate order.

    The two torch biases are summed into the course's one bias (the same function).
    """
    if model.bidirectional:
        raise ValueError("course layouts describe one direction; this model is bidirectional")
    if model.num_layers != 1:
        raise ValueError("course layouts describe one layer; this model has "
                         f"{model.num_layers} (convert each layer's model separately)")
    G = model.architecture.gate_count
    w_in = [w.T.detach().clone() for w in model.weight_ih_l0.chunk(G)]
    w_rec = [u.T.detach().clone() for u in model.weight_hh_l0.chunk(G)]
    if model.bias:
        total = (model.bias_ih_l0 + model.bias_hh_l0).detach()
    else:
        total = model.weight_ih_l0.new_zeros(G * model.hidden_size)
    return w_in, w_rec, [b.clone() for b in total.chunk(G)]


def require(params: Mapping, names: Sequence[str], layout: str) -> None:
    missing = [n for n in names if n not in params]
    if missing:
        raise KeyError(f"{layout} layout: missing {', '.join(missing)} (expected {', '.join(names)})")
