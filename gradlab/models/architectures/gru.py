"""GRU: the forward tape and the backward recurrences (docs/derivations.md, eqs. GRU-back-*)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import torch

from gradlab.models.architectures.base import LayerGrads, stack_states
from gradlab.engine.logscale import LogScale, PlainScale
from gradlab.models.cells import gru_gates, gru_update


@dataclass
class GRUTape:
    h: torch.Tensor  # [T+1, B, H], h[0] = h_0
    gates: torch.Tensor  # [T, B, 4H]: r, z, n and m = h_{t−1} W_hnᵀ + b_hn

    @property
    def final(self) -> tuple[torch.Tensor, ...]:
        return (self.h[-1],)


def forward(x_proj: torch.Tensor, state: tuple[torch.Tensor, ...], weight_hh: torch.Tensor,
            bias_hh: Optional[torch.Tensor]) -> GRUTape:
    """Eqs. (GRU-gates, -update) for all steps, keeping h_t, r, z, n and m.

    x_proj: [T, B, 3H]; state: (h_0 [B, H],).
    """
    T, B, H3 = x_proj.shape
    h = stack_states(state[0], T)
    gates = x_proj.new_empty(T, B, 4 * H3 // 3)
    for t in range(T):
        _, z, n, _ = gru_gates(x_proj[t], h[t], weight_hh, bias_hh, out=gates[t])
        gru_update(z, n, h[t], out=h[t + 1])
    return GRUTape(h, gates)


def backward(tape: GRUTape, scale: Union[PlainScale, LogScale], carry: tuple[torch.Tensor, ...],
             weight_hh: torch.Tensor) -> LayerGrads:
    """The GRU's backward recurrences, with ∂L/∂h beyond the last step from ``carry``:

    (GRU-back-h)  δh_t = ∂⁺L/∂h_t + δy_{t+1} W_hh + δh_{t+1} ⊙ z_{t+1}
    (GRU-back-a)  δa_n = δh_t ⊙ (1 − z)(1 − n²),  δa_z = δh_t ⊙ (h_{t−1} − n) z(1 − z),
                  δa_r = δa_n ⊙ m ⊙ r(1 − r)
    δx_t = [δa_r, δa_z, δa_n] is the gradient on the input projection, δy_t = [δa_r, δa_z, δa_n ⊙ r]
    the gradient on the recurrent projection y = h_{t−1} W_hhᵀ + b_hh.
    carry: (∂L/∂h arriving from beyond the last step,) [B, H].
    ``scale`` supplies the explicit gradients and the arithmetic of the carry: PlainScale adds them as
    they are; LogScale runs the sweep in the log domain (eq. LOG-carry), where ``carry`` is unit-size
    and every stored row is on the scale ``scale.steps[t]``.
    """
    explicit = scale.explicit
    T, B, H = explicit.shape
    r, z, n, m = tape.gates.view(T, B, 4, H).unbind(2)
    A_n = (1 - z) * (1 - n * n)
    A_z = (tape.h[:-1] - n) * z * (1 - z)
    A_r = m * r * (1 - r)
    dh = torch.empty_like(explicit)
    dx = explicit.new_empty(T, B, 3, H)
    dy = explicit.new_empty(T, B, 3, H)
    back = carry[0].clone()
    for t in range(T - 1, -1, -1):
        scale.enter(t, back, (), out=dh[t])
        torch.mul(dh[t], A_n[t], out=dx[t, :, 2])
        torch.mul(dh[t], A_z[t], out=dx[t, :, 1])
        torch.mul(dx[t, :, 2], A_r[t], out=dx[t, :, 0])
        dy[t, :, :2] = dx[t, :, :2]
        torch.mul(dx[t, :, 2], r[t], out=dy[t, :, 2])
        torch.mm(dy[t].view(B, 3 * H), weight_hh, out=back)
        back.addcmul_(dh[t], z[t])
        scale.renormalize(back)
    return LayerGrads(dh, None, dx.view(T, B, 3 * H), dy.view(T, B, 3 * H), (back,))


def step_jacobian(tape: GRUTape, t: int, weight_hh: torch.Tensor) -> torch.Tensor:
    """Eq. (JAC-GRU): ∂h_t/∂h_{t−1} for step t (0-based). Returns [B, H, H]."""
    r, z, n, m = tape.gates[t].chunk(4, dim=-1)
    W_r, W_z, W_n = weight_hh.chunk(3)
    col = lambda v: v.unsqueeze(-1)  # noqa: E731  diag(v) M == v[:, None] * M
    dn = col((1 - z) * (1 - n * n)) * (col(r) * W_n + col(m * r * (1 - r)) * W_r)
    return torch.diag_embed(z) + col((tape.h[t] - n) * z * (1 - z)) * W_z + dn
