"""SRN: the forward tape and the backward recurrence (docs/derivations.md, eq. SRN-back)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import torch

from gradlab.models.architectures.base import LayerGrads, stack_states
from gradlab.engine.logscale import LogScale, PlainScale
from gradlab.models.cells import ACTIVATION_DERIVATIVES, srn_step


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


def backward(tape: SRNTape, scale: Union[PlainScale, LogScale], carry: tuple[torch.Tensor, ...],
             weight_hh: torch.Tensor) -> LayerGrads:
    """Eq. (SRN-back): δ_t = ∂⁺L/∂h_t + (δ_{t+1} ⊙ φ′(a_{t+1})) W_hh, with δ_T from ``carry``.

    carry: (∂L/∂h_{T−1} from beyond the sequence,) [B, H].
    ``scale`` supplies the explicit gradients and the arithmetic of the carry: PlainScale adds them as
    they are; LogScale runs the sweep in the log domain (eq. LOG-carry), where ``carry`` is unit-size
    and every stored row is on the scale ``scale.steps[t]``.
    """
    explicit = scale.explicit
    T = explicit.shape[0]
    dh = torch.empty_like(explicit)
    da = torch.empty_like(explicit)  # ∂L/∂a_t, a_t the pre-activation
    back = carry[0].clone()
    for t in range(T - 1, -1, -1):
        scale.enter(t, back, (), out=dh[t])
        torch.mul(dh[t], tape.dphi[t], out=da[t])
        torch.mm(da[t], weight_hh, out=back)
        scale.renormalize(back)
    return LayerGrads(dh, None, da, da, (back,))


def step_jacobian(tape: SRNTape, t: int, weight_hh: torch.Tensor) -> torch.Tensor:
    """Eq. (JAC-SRN): ∂h_t/∂h_{t−1} = diag(φ′(a_t)) W_hh for step t (0-based). Returns [B, H, H]."""
    return tape.dphi[t].unsqueeze(-1) * weight_hh
