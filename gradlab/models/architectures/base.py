"""What every architecture's forward tape and backward sweep hand to the BPTT driver."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch


@dataclass
class LayerGrads:
    """The backward sweep of one layer (time-major, T steps).

    dh:      [T, B, H]  total ∂L/∂h_t
    dc:      [T, B, H]  total ∂L/∂c_t (LSTM), else None
    dx_proj: [T, B, G·H] ∂L/∂(x_t W_ihᵀ + b_ih), the gradient on the input projection
    dh_proj: [T, B, G·H] ∂L/∂(h_{t−1} W_hhᵀ + b_hh), the gradient on the recurrent projection
             (the same tensor as dx_proj except for the GRU, whose reset gate sits in between)
    carry:   the gradient on the initial state, (∂L/∂h_0,) or (∂L/∂h_0, ∂L/∂c_0), each [B, H]
    """

    dh: torch.Tensor
    dc: Optional[torch.Tensor]
    dx_proj: torch.Tensor
    dh_proj: torch.Tensor
    carry: tuple[torch.Tensor, ...]


def stack_states(first: torch.Tensor, T: int) -> torch.Tensor:
    """A [T+1, B, H] buffer whose row 0 is ``first`` (the state before step 0)."""
    buf = first.new_empty((T + 1,) + tuple(first.shape))
    buf[0] = first
    return buf
