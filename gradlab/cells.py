"""One time step of each architecture, as plain math (equations in docs/models.md).

Row-vector convention as in torch: ``x_t: [B, I]``, ``h: [B, H]``, weights ``[G*H, in]``.
The input projection ``x_proj = x_t W_ihᵀ + b_ih`` does not depend on the recurrence, so the
models compute it for all steps in one matrix product and pass one row ``[B, G*H]`` per step.
Nothing here loops over time or knows about hooks.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "linear": lambda a: a,
}

#: φ′(a) written through φ's output y = φ(a), as the backward pass needs it (eq. SRN-back).
ACTIVATION_DERIVATIVES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": lambda y: 1 - y * y,
    "relu": lambda y: (y > 0).to(y.dtype),
    "linear": lambda y: torch.ones_like(y),
}


def srn_step(
    x_proj: torch.Tensor,
    h: torch.Tensor,
    weight_hh: torch.Tensor,
    bias_hh: Optional[torch.Tensor],
    nonlinearity: str,
) -> torch.Tensor:
    """Eq. (SRN): h_t = φ(x_proj + h_{t−1} W_hhᵀ + b_hh).

    x_proj: [B, H]; h: [B, H]; weight_hh: [H, H]; returns h_t: [B, H].
    """
    return ACTIVATIONS[nonlinearity](x_proj + F.linear(h, weight_hh, bias_hh))


def lstm_gates(
    x_proj: torch.Tensor,
    h: torch.Tensor,
    weight_hh: torch.Tensor,
    bias_hh: Optional[torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. (LSTM-gates): z = x_proj + h_{t−1} W_hhᵀ + b_hh split as (i, f, g, o);
    i, f, o = σ(·), g = tanh(·).

    x_proj: [B, 4H]; h: [B, H]; weight_hh: [4H, H]; returns (i, f, g, o), each [B, H].
    """
    zi, zf, zg, zo = (x_proj + F.linear(h, weight_hh, bias_hh)).chunk(4, dim=-1)
    return torch.sigmoid(zi), torch.sigmoid(zf), torch.tanh(zg), torch.sigmoid(zo)


def lstm_cell(i: torch.Tensor, f: torch.Tensor, g: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Eq. (LSTM-cell): c_t = f ⊙ c_{t−1} + i ⊙ g. All [B, H]."""
    return f * c + i * g


def lstm_hidden(c: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
    """Eq. (LSTM-hidden): h_t = o ⊙ tanh(c_t). c, o: [B, H]; returns [B, H]."""
    return o * torch.tanh(c)


def gru_gates(
    x_proj: torch.Tensor,
    h: torch.Tensor,
    weight_hh: torch.Tensor,
    bias_hh: Optional[torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. (GRU-gates), torch's variant with the reset gate applied after the recurrent product:

    r = σ(x_r + h W_hrᵀ + b_hr), z = σ(x_z + h W_hzᵀ + b_hz), n = tanh(x_n + r ⊙ m),
    m = h W_hnᵀ + b_hn.
    x_proj: [B, 3H] (= x_t W_ihᵀ + b_ih, gate order r, z, n); h: [B, H]; weight_hh: [3H, H].
    Returns (r, z, n, m), each [B, H].
    """
    xr, xz, xn = x_proj.chunk(3, dim=-1)
    hr, hz, m = F.linear(h, weight_hh, bias_hh).chunk(3, dim=-1)
    r = torch.sigmoid(xr + hr)
    return r, torch.sigmoid(xz + hz), torch.tanh(xn + r * m), m


def gru_update(z: torch.Tensor, n: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Eq. (GRU-update): h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}. All [B, H]."""
    return (1 - z) * n + z * h
