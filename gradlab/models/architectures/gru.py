"""The gated recurrent unit in torch's form (the reset gate applied after the recurrent product):
eqs. (GRU-gates), (GRU-update), the backward recurrences (GRU-back-*) and the one-step Jacobian
(JAC-GRU), docs/derivations.md. Gate order r, z, n."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import torch
import torch.nn.functional as F

from gradlab.models.architectures.base import (Architecture, CarryScale, InputGrad, Projections, RowNorms,
                                               StateHook, SweepGrads, TakeProjections, diag_times, no_hook,
                                               run_spans, stack_states)
from gradlab.models.architectures.compiled import kernels


def gru_gates(x_proj: torch.Tensor, h: torch.Tensor, weight_hh: torch.Tensor, bias_hh: Optional[torch.Tensor],
              out: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. (GRU-gates): r = σ(x_r + h W_hrᵀ + b_hr), z = σ(x_z + h W_hzᵀ + b_hz),
    n = tanh(x_n + r ⊙ m) with m = h W_hnᵀ + b_hn.

    x_proj: [B, 3H] (= x_t W_ihᵀ + b_ih, gate order r, z, n); h: [B, H]; weight_hh: [3H, H];
    out: optional [B, 4H] receiving (r, z, n, m) in place. Returns (r, z, n, m), each [B, H].
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
    n.copy_(torch.addcmul(xn, r, m).tanh_())  # tanh of a strided view runs about 4x slower than of a contiguous one
    return r, z, n, m


def gru_update(z: torch.Tensor, n: torch.Tensor, h: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Eq. (GRU-update): h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}. All [B, H]."""
    if out is None:
        return (1 - z) * n + z * h
    return torch.sub(h, n, out=out).mul_(z).add_(n)


@dataclass
class GRUTape:
    h: torch.Tensor  # [T+1, B, H], h[0] = h_0
    gates: torch.Tensor  # [T, B, 4H]: r, z, n and m = h_{t−1} W_hnᵀ + b_hn

    @property
    def final(self) -> tuple[torch.Tensor, ...]:
        return (self.h[-1],)


@dataclass
class GRUDerivatives:
    """The local derivatives of one step, for every step (each [T, B, H]):

    n: ∂h_t/∂a^n = (1 − z)(1 − n²);  z: ∂h_t/∂a^z = (h_{t−1} − n) z(1 − z);
    r: ∂a^n/∂a^r = m ⊙ r(1 − r);  reset: r;  keep: ∂h_t/∂h_{t−1} along the update path = z
    """

    n: torch.Tensor
    z: torch.Tensor
    r: torch.Tensor
    reset: torch.Tensor
    keep: torch.Tensor


class GRUArchitecture(Architecture):
    name = "gru"
    label = "GRU"
    gates = ("r", "z", "n")
    bias_hh_is_redundant = False

    def step(self, x_proj, state, weight_hh, bias_hh, hook: StateHook = no_hook):
        h = state[0]
        _, z, n, _ = gru_gates(x_proj, h, weight_hh, bias_hh)
        return (hook("h", gru_update(z, n, h)),)

    def forward_sweep(self, x_proj, state, weight_hh, bias_hh) -> GRUTape:
        """All steps, keeping h_t, r, z, n and m. x_proj: [T, B, 3H]; state: (h_0 [B, H],).
        Compiled (forward_steps.cpp) where available, else step by step."""
        T, B, H3 = x_proj.shape
        h = stack_states(state[0], T)
        gates = x_proj.new_empty(T, B, 4 * H3 // 3)
        compiled = kernels(x_proj)
        if compiled is not None:
            compiled.gru_forward(gates, h, x_proj.contiguous(), weight_hh.contiguous(), bias_hh)
            return GRUTape(h, gates)
        for t in range(T):
            _, z, n, _ = gru_gates(x_proj[t], h[t], weight_hh, bias_hh, out=gates[t])
            gru_update(z, n, h[t], out=h[t + 1])
        return GRUTape(h, gates)

    def tape_from_states(self, x_proj, h, state, weight_hh, bias_hh) -> GRUTape:
        """Eq. (GRU-gates) for all steps at once, from h_{t−1} = h[:-1], in place into the tape's buffer."""
        T, B, H3 = x_proj.shape
        gates = x_proj.new_empty(T, B, 4 * H3 // 3)
        gru_gates(x_proj.reshape(T * B, H3), h[:-1].reshape(T * B, -1), weight_hh, bias_hh,
                  out=gates.view(T * B, -1))
        return GRUTape(h, gates)

    def local_derivatives(self, tape: GRUTape) -> GRUDerivatives:
        T, B, H4 = tape.gates.shape
        r, z, n, m = tape.gates.view(T, B, 4, H4 // 4).unbind(2)
        return GRUDerivatives(n=(1 - z) * (1 - n * n), z=(tape.h[:-1] - n) * z * (1 - z), r=m * r * (1 - r),
                              reset=r, keep=z)

    def backward_sweep(self, tape: GRUTape, scale: CarryScale, grad_final, weight_hh,
                       take_projections: Optional[TakeProjections] = None, norms: Optional[RowNorms] = None,
                       weight_ih: Optional[torch.Tensor] = None) -> SweepGrads:
        """The backward recurrences, from ``grad_final`` = (∂L/∂h_n,):

        (GRU-back-h)  δh_t = ∂⁺L/∂h_t + δy_{t+1} W_hh + δh_{t+1} ⊙ z_{t+1}
        (GRU-back-a)  δa_n = δh_t ⊙ ∂h/∂a^n,  δa_z = δh_t ⊙ ∂h/∂a^z,  δa_r = δa_n ⊙ ∂a^n/∂a^r
        δx_t = [δa_r, δa_z, δa_n] is the gradient on the input projection, δy_t = [δa_r, δa_z, δa_n ⊙ r]
        the gradient on the recurrent projection y = h_{t−1} W_hhᵀ + b_hh.
        """
        explicit = scale.explicit
        T, B, H = explicit.shape
        d = self.local_derivatives(tape)
        dh = torch.empty_like(explicit)
        carry = grad_final[0].clone()
        compiled = kernels(explicit)
        input_grad = InputGrad(explicit, weight_ih, compiled)
        projections = Projections(explicit, (3, H), 2, take_projections, compiled is not None, input_grad.keeps)

        def after_entering(t: int) -> None:  # δh_t is in dh[t]: eqs. (GRU-back-a), (GRU-back-h)
            dx, dy = projections.at(t)
            torch.mul(dh[t], d.n[t], out=dx[:, 2])
            torch.mul(dh[t], d.z[t], out=dx[:, 1])
            torch.mul(dx[:, 2], d.r[t], out=dx[:, 0])
            dy[:, :2] = dx[:, :2]
            torch.mul(dx[:, 2], d.reset[t], out=dy[:, 2])
            torch.mm(dy.view(B, 3 * H), weight_hh, out=carry)
            carry.addcmul_(dh[t], d.keep[t])
            input_grad.step(t, dx)

        def compiled_span(hi: int, lo: int, entry) -> None:  # sweep_steps.cpp: entering and after_entering
            measure = (None, None) if norms is None else norms.outputs(hi, lo)
            compiled.gru_steps(carry, dh, *projections.buffers, d.n, d.z, d.r, d.reset, d.keep, weight_hh, weight_ih,
                               input_grad.buffer, hi, lo, *measure, *(entry or (None,) * 4))

        scale.track(dh)
        run_spans(scale, T, (carry,), dh, after_entering, None if compiled is None else compiled_span, projections)
        return SweepGrads(dh, None, (carry,), input_grad.result(projections))

    def step_jacobians(self, tape: GRUTape, weight_hh) -> Iterator[torch.Tensor]:
        """Eq. (JAC-GRU): ∂h_t/∂h_{t−1} = diag(z) + diag(∂h/∂a^z) W_z
        + diag(∂h/∂a^n)(diag(r) W_n + diag(∂a^n/∂a^r) W_r). Each [B, H, H]."""
        d = self.local_derivatives(tape)
        W_r, W_z, W_n = weight_hh.chunk(3)
        for t in range(d.n.shape[0]):
            dn = diag_times(d.n[t], diag_times(d.reset[t], W_n) + diag_times(d.r[t], W_r))
            yield torch.diag_embed(d.keep[t]) + diag_times(d.z[t], W_z) + dn
