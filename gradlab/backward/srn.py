"""SRN: the forward tape and the backward recurrence (docs/derivations.md, eq. SRN-back)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from gradlab.backward.common import LayerGrads, stack_states
from gradlab.backward.logscale import LogScale
from gradlab.cells import ACTIVATION_DERIVATIVES, srn_step


@dataclass
class SRNTape:
    h: torch.Tensor  # [T+1, B, H], h[0] = h_0
    dphi: torch.Tensor  # [T, B, H], φ′(a_t)

    @property
    def final(self) -> tuple[torch.Tensor, ...]:
        return (self.h[-1],)


def forward(x_proj: torch.Tensor, state: tuple[torch.Tensor, ...], weight_hh: torch.Tensor,
            bias_hh: Optional[torch.Tensor], nonlinearity: str) -> SRNTape:
    """Eq. (SRN) for all steps, keeping h_t. x_proj: [T, B, H]; state: (h_0 [B, H],)."""
    T = x_proj.shape[0]
    h = stack_states(state[0], T)
    x_proj = x_proj if bias_hh is None else x_proj + bias_hh  # b_hh added once for all steps
    for t in range(T):
        srn_step(x_proj[t], h[t], weight_hh, None, nonlinearity, out=h[t + 1])
    return SRNTape(h, ACTIVATION_DERIVATIVES[nonlinearity](h[1:]))


def backward(tape: SRNTape, explicit: torch.Tensor, carry: tuple[torch.Tensor, ...],
             weight_hh: torch.Tensor, scale: Optional[LogScale] = None) -> LayerGrads:
    """Eq. (SRN-back): δ_t = ∂⁺L/∂h_t + (δ_{t+1} ⊙ φ′(a_{t+1})) W_hh, with δ_T from ``carry``.

    explicit: [T, B, H]; carry: (∂L/∂h_{T−1} from beyond the sequence,) [B, H].
    With ``scale`` the sweep runs in the log domain (eq. LOG-carry): ``carry`` is unit-size, the
    explicit gradients come from ``scale``, and every stored row is on the scale ``scale.steps[t]``.
    """
    T = explicit.shape[0]
    dh = torch.empty_like(explicit)
    da = torch.empty_like(explicit)  # ∂L/∂a_t, a_t the pre-activation
    back = carry[0].clone()
    for t in range(T - 1, -1, -1):
        if scale is None:
            torch.add(explicit[t], back, out=dh[t])
        else:
            scale.enter(t, back, (), out=dh[t])
        torch.mul(dh[t], tape.dphi[t], out=da[t])
        torch.mm(da[t], weight_hh, out=back)
        if scale is not None:
            scale.renormalize(back)
    return LayerGrads(dh, None, da, da, (back,))


def step_jacobian(tape: SRNTape, t: int, weight_hh: torch.Tensor) -> torch.Tensor:
    """Eq. (JAC-SRN): ∂h_t/∂h_{t−1} = diag(φ′(a_t)) W_hh for step t (0-based). Returns [B, H, H]."""
    return tape.dphi[t].unsqueeze(-1) * weight_hh
