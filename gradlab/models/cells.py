"""One time step of each architecture, as plain math (equations in docs/models.md and
docs/derivations.md).

Row-vector convention as in torch: ``x_t: [B, I]``, ``h: [B, H]``, weights ``[G*H, in]``.
The input projection ``x_proj = x_t W_ihᵀ + b_ih`` does not depend on the recurrence, so callers
compute it for all steps in one matrix product and pass one row ``[B, G*H]`` per step.
Nothing here loops over time or knows about hooks.

Each function has two ways to evaluate the same equation: without ``out`` it is functional and
differentiable (the models use it under autograd); with ``out`` buffers it writes its results
into them in place and allocates nothing (``gradlab.engine.bptt``'s forward sweep, under no_grad). In the
``out`` path the caller has already added ``b_hh`` to ``x_proj`` (SRN, LSTM), once for all steps.
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
_ACTIVATIONS_INPLACE: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.Tensor.tanh_,
    "relu": torch.Tensor.relu_,
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
    out: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Eq. (SRN): h_t = φ(x_proj + h_{t−1} W_hhᵀ + b_hh).

    x_proj: [B, H]; h: [B, H]; weight_hh: [H, H]; returns h_t: [B, H] (``out`` when given).
    """
    if out is None:
        return ACTIVATIONS[nonlinearity](x_proj + F.linear(h, weight_hh, bias_hh))
    torch.addmm(x_proj, h, weight_hh.T, out=out)
    return _ACTIVATIONS_INPLACE[nonlinearity](out)


def lstm_gates(
    x_proj: torch.Tensor,
    h: torch.Tensor,
    weight_hh: torch.Tensor,
    bias_hh: Optional[torch.Tensor],
    out: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. (LSTM-gates): z = x_proj + h_{t−1} W_hhᵀ + b_hh split as (i, f, g, o);
    i, f, o = σ(·), g = tanh(·).

    x_proj: [B, 4H]; h: [B, H]; weight_hh: [4H, H]; out: optional [B, 4H] receiving the gates.
    Returns (i, f, g, o), each [B, H] (views of ``out`` when given).
    """
    if out is None:
        zi, zf, zg, zo = (x_proj + F.linear(h, weight_hh, bias_hh)).chunk(4, dim=-1)
        return torch.sigmoid(zi), torch.sigmoid(zf), torch.tanh(zg), torch.sigmoid(zo)
    torch.addmm(x_proj, h, weight_hh.T, out=out)
    i, f, g, o = out.chunk(4, dim=-1)
    torch.sigmoid(out[:, : 2 * h.shape[-1]], out=out[:, : 2 * h.shape[-1]])
    g.tanh_()
    o.sigmoid_()
    return i, f, g, o


def lstm_cell(i: torch.Tensor, f: torch.Tensor, g: torch.Tensor, c: torch.Tensor,
              out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Eq. (LSTM-cell): c_t = f ⊙ c_{t−1} + i ⊙ g. All [B, H]."""
    if out is None:
        return f * c + i * g
    return torch.mul(f, c, out=out).addcmul_(i, g)


def lstm_hidden(c: torch.Tensor, o: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Eq. (LSTM-hidden): h_t = o ⊙ tanh(c_t). c, o: [B, H]; returns [B, H]."""
    if out is None:
        return o * torch.tanh(c)
    return torch.tanh(c, out=out).mul_(o)


def gru_gates(
    x_proj: torch.Tensor,
    h: torch.Tensor,
    weight_hh: torch.Tensor,
    bias_hh: Optional[torch.Tensor],
    out: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. (GRU-gates), torch's variant with the reset gate applied after the recurrent product:

    r = σ(x_r + h W_hrᵀ + b_hr), z = σ(x_z + h W_hzᵀ + b_hz), n = tanh(x_n + r ⊙ m),
    m = h W_hnᵀ + b_hn.
    x_proj: [B, 3H] (= x_t W_ihᵀ + b_ih, gate order r, z, n); h: [B, H]; weight_hh: [3H, H];
    out: optional [B, 4H] receiving (r, z, n, m). Returns (r, z, n, m), each [B, H].
    """
    xr, xz, xn = x_proj.chunk(3, dim=-1)
    if out is None:
        hr, hz, m = F.linear(h, weight_hh, bias_hh).chunk(3, dim=-1)
        r = torch.sigmoid(xr + hr)
        return r, torch.sigmoid(xz + hz), torch.tanh(xn + r * m), m
    H = h.shape[-1]
    r, z, n, m = out.chunk(4, dim=-1)
    y = out[:, : 3 * H]
    if bias_hh is None:
        torch.mm(h, weight_hh.T, out=y)
    else:
        torch.addmm(bias_hh, h, weight_hh.T, out=y)
    m.copy_(n)  # y's n block is m; n's slot is overwritten next
    rz = out[:, : 2 * H]
    torch.sigmoid(rz.add_(x_proj[:, : 2 * H]), out=rz)
    torch.addcmul(xn, r, m, out=n).tanh_()
    return r, z, n, m


def gru_update(z: torch.Tensor, n: torch.Tensor, h: torch.Tensor,
               out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Eq. (GRU-update): h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}. All [B, H]."""
    if out is None:
        return (1 - z) * n + z * h
    return torch.sub(h, n, out=out).mul_(z).add_(n)
