"""Initialisations that put a model in a chosen regime: vanishing, neutral or exploding.

``--init`` sets the shape of every H×H block of W_hh (one block per gate); ``--gain`` then rescales
each block to the given spectral radius; ``--forget-bias`` sets the LSTM's total forget-gate bias.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from gradlab.models.recurrent import RecurrentModel

INITS = ("default", "orthogonal", "identity", "normal", "nndl")


def layer_directions(model: RecurrentModel) -> list[tuple[int, int]]:
    """(layer, direction) of every layer and direction, in torch's order."""
    return [(k, d) for k in range(model.num_layers) for d in range(model.num_directions)]


def nndl_init(model: RecurrentModel, gen: torch.Generator) -> None:
    """The NNDL book's initialisation (6.1.2, 6.3): each gate's W [I, H], U [H, H] and its single
    bias b [1, H] Xavier-uniform, bound √(6 / (fan_in + fan_out)). The book has one bias per gate;
    torch's layout has two (b_ih + b_hh), so b goes into b_ih and b_hh is zero. For the SRN and LSTM
    b_hh only ever adds to b_ih, so it is also frozen (``requires_grad=False``): training then moves
    exactly the book's parameters. (The GRU's b_hn sits inside r ⊙ (·) and stays trainable.)"""
    H = model.hidden_size
    with torch.no_grad():
        for k, d in layer_directions(model):
            w_ih, w_hh, b_ih, b_hh = model.layer_parameters(k, d)
            for weight in (w_ih, w_hh):
                bound = math.sqrt(6.0 / (weight.shape[1] + H))
                weight.copy_(torch.rand(weight.shape, generator=gen, dtype=torch.float64).mul(2 * bound).sub(bound))
            if b_ih is not None:
                bound = math.sqrt(6.0 / (1 + H))
                b_ih.copy_(torch.rand(b_ih.shape, generator=gen, dtype=torch.float64).mul(2 * bound).sub(bound))
                b_hh.zero_()
                if model.architecture.bias_hh_is_redundant:
                    b_hh.requires_grad_(False)


def _block(init: str, H: int, gen: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    if init == "orthogonal":
        q, r = torch.linalg.qr(torch.randn(H, H, generator=gen, dtype=torch.float64))
        return (q * torch.sign(torch.diagonal(r))).to(like)  # Haar-distributed
    if init == "identity":  # IRNN (Le, Jaitly & Hinton 2015)
        return torch.eye(H, dtype=like.dtype, device=like.device)
    # normal: entries N(0, 1/H), spectral radius ≈ 1 for large H (circular law)
    return (torch.randn(H, H, generator=gen, dtype=torch.float64) / math.sqrt(H)).to(like)


def spectral_radius(w: torch.Tensor) -> float:
    """max |eigenvalue| of a square matrix, computed in float64 on the CPU."""
    return float(torch.linalg.eigvals(w.detach().to(torch.float64).cpu()).abs().max())


def initialise(model: RecurrentModel, init: str = "default", gain: Optional[float] = None,
               forget_bias: Optional[float] = None, seed: int = 0) -> RecurrentModel:
    """Re-initialise the recurrent weights of ``model`` in place (and return it).

    init: "default" keeps torch's initialisation; "orthogonal", "identity" or "normal" replace every
    H×H block of every W_hh (for "identity" the biases are set to zero, as in the IRNN); "nndl"
    re-draws every weight and bias as the NNDL book does (:func:`nndl_init`).
    gain: rescale every block of W_hh to this spectral radius. forget_bias: the LSTM's forget-gate
    bias b_ih + b_hh (set in b_ih; b_hh's forget block is zeroed).
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    forget = model.architecture.forget_gate
    if forget_bias is not None and forget is None:
        raise ValueError(f"forget_bias applies to models with a forget gate (LSTM), not a {model.architecture.label}")
    if forget_bias is not None and not model.bias:
        raise ValueError("forget_bias needs a model with biases")
    H = model.hidden_size
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if init == "nndl":
            nndl_init(model, gen)
        for k, d in layer_directions(model):
            w_ih, w_hh, b_ih, b_hh = model.layer_parameters(k, d)
            blocks = list(w_hh.split(H))
            for block in blocks:
                if init not in ("default", "nndl"):
                    block.copy_(_block(init, H, gen, block))
                if gain is not None:
                    radius = spectral_radius(block)
                    if radius > 0:
                        block.mul_(gain / radius)
            if init == "identity" and b_ih is not None:
                b_ih.zero_()
                b_hh.zero_()
            if forget_bias is not None:
                b_ih[forget * H:(forget + 1) * H].fill_(forget_bias)
                b_hh[forget * H:(forget + 1) * H].zero_()
    return model
