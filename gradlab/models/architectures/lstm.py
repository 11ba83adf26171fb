"""LSTM: the forward tape and the backward recurrences (docs/derivations.md, eqs. LSTM-back-*)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import torch

from gradlab.models.architectures.base import LayerGrads, stack_states
from gradlab.engine.logscale import LogScale, PlainScale
from gradlab.models.cells import lstm_cell, lstm_gates, lstm_hidden


@dataclass
class LSTMTape:
    h: torch.Tensor  # [T+1, B, H], h[0] = h_0
    c: torch.Tensor  # [T+1, B, H], c[0] = c_0
    gates: torch.Tensor  # [T, B, 4H], the activated gates i, f, g, o

    @property
    def final(self) -> tuple[torch.Tensor, ...]:
        return self.h[-1], self.c[-1]


def forward(x_proj: torch.Tensor, state: tuple[torch.Tensor, ...], weight_hh: torch.Tensor,
            bias_hh: Optional[torch.Tensor]) -> LSTMTape:
    """Eqs. (LSTM-gates, -cell, -hidden) for all steps, keeping h_t, c_t and the gates.

    x_proj: [T, B, 4H]; state: (h_0, c_0), each [B, H].
    """
    T = x_proj.shape[0]
    h, c = stack_states(state[0], T), stack_states(state[1], T)
    gates = torch.empty_like(x_proj)
    x_proj = x_proj if bias_hh is None else x_proj + bias_hh  # b_hh added once for all steps
    for t in range(T):
        i, f, g, o = lstm_gates(x_proj[t], h[t], weight_hh, None, out=gates[t])
        lstm_cell(i, f, g, c[t], out=c[t + 1])
        lstm_hidden(c[t + 1], o, out=h[t + 1])
    return LSTMTape(h, c, gates)


def backward(tape: LSTMTape, scale: Union[PlainScale, LogScale], carry: tuple[torch.Tensor, ...],
             weight_hh: torch.Tensor) -> LayerGrads:
    """The LSTM's backward recurrences, with (∂L/∂h, ∂L/∂c) beyond the last step from ``carry``:

    (LSTM-back-h)  δh_t = ∂⁺L/∂h_t + δz_{t+1} W_hh
    (LSTM-back-c)  δc_t = δh_t ⊙ o_t ⊙ (1 − tanh² c_t) + δc_{t+1} ⊙ f_{t+1}
    (LSTM-back-z)  δz_t = [δc_t ⊙ g ⊙ i(1−i), δc_t ⊙ c_{t−1} ⊙ f(1−f), δc_t ⊙ i ⊙ (1−g²),
                          δh_t ⊙ tanh c_t ⊙ o(1−o)]
    The factors that do not depend on the recurrence are formed for all steps before the loop;
    the loop itself writes into preallocated buffers.
    carry: (∂L/∂h, ∂L/∂c) arriving from beyond the last step, each [B, H].
    ``scale`` supplies the explicit gradients and the arithmetic of the carry: PlainScale adds them as
    they are; LogScale runs the sweep in the log domain (eq. LOG-carry), where ``carry`` is unit-size
    and every stored row is on the scale ``scale.steps[t]``.
    """
    explicit = scale.explicit
    T, B, H = explicit.shape
    i, f, g, o = tape.gates.view(T, B, 4, H).unbind(2)
    c_prev, tanh_c = tape.c[:-1], torch.tanh(tape.c[1:])
    # δz_{i,f,g} = δc ⊙ A and δz_o = δh ⊙ A_o; δc gains δh ⊙ A_c within the step
    A = torch.stack((g * i * (1 - i), c_prev * f * (1 - f), i * (1 - g * g)), dim=2)  # [T, B, 3, H]
    A_o = tanh_c * o * (1 - o)
    A_c = o * (1 - tanh_c * tanh_c)
    dh, dc = torch.empty_like(explicit), torch.empty_like(explicit)
    dz = explicit.new_empty(T, B, 4, H)
    back_h, back_c = carry[0].clone(), carry[1].clone()
    for t in range(T - 1, -1, -1):
        scale.enter(t, back_h, (back_c,), out=dh[t])
        torch.addcmul(back_c, dh[t], A_c[t], out=dc[t])
        torch.mul(dc[t].unsqueeze(1), A[t], out=dz[t, :, :3])
        torch.mul(dh[t], A_o[t], out=dz[t, :, 3])
        torch.mm(dz[t].view(B, 4 * H), weight_hh, out=back_h)
        torch.mul(dc[t], f[t], out=back_c)
        scale.renormalize(back_h, back_c)
    dz = dz.view(T, B, 4 * H)
    return LayerGrads(dh, dc, dz, dz, (back_h, back_c))


def step_jacobian(tape: LSTMTape, t: int, weight_hh: torch.Tensor) -> torch.Tensor:
    """Eq. (JAC-LSTM): the Jacobian of (h_t, c_t) with respect to (h_{t−1}, c_{t−1}) for step t
    (0-based), as the block matrix [[∂h/∂h, ∂h/∂c], [∂c/∂h, ∂c/∂c]]. Returns [B, 2H, 2H]."""
    i, f, g, o = tape.gates[t].chunk(4, dim=-1)
    c_prev, tanh_c = tape.c[t], torch.tanh(tape.c[t + 1])
    W_i, W_f, W_g, W_o = weight_hh.chunk(4)
    col = lambda v: v.unsqueeze(-1)  # noqa: E731  diag(v) M == v[:, None] * M
    dc_dh = col(g * i * (1 - i)) * W_i + col(c_prev * f * (1 - f)) * W_f + col(i * (1 - g * g)) * W_g
    k = o * (1 - tanh_c * tanh_c)
    dh_dh = col(tanh_c * o * (1 - o)) * W_o + col(k) * dc_dh
    top = torch.cat((dh_dh, torch.diag_embed(k * f)), dim=-1)
    bottom = torch.cat((dc_dh, torch.diag_embed(f)), dim=-1)
    return torch.cat((top, bottom), dim=-2)
