"""The simple recurrent network (Elman): eq. (SRN), its backward recurrence (SRN-back) and its
one-step Jacobian (JAC-SRN), docs/derivations.md."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import torch
import torch.nn.functional as F

from gradlab.models.architectures.base import (Architecture, CarryScale, InputGrad, Projections, RowNorms,
                                               StateHook, SweepGrads, TakeProjections, diag_times, no_hook,
                                               run_spans, stack_states)
from gradlab.models.architectures.compiled import kernels

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
#: sup |φ′| per nonlinearity, the γ of the Pascanu–Mikolov–Bengio bound.
DERIVATIVE_BOUNDS = {"tanh": 1.0, "relu": 1.0, "linear": 1.0}
NONLINEARITIES = tuple(ACTIVATIONS)


def srn_step(x_proj: torch.Tensor, h: torch.Tensor, weight_hh: torch.Tensor, bias_hh: Optional[torch.Tensor],
             nonlinearity: str, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Eq. (SRN): h_t = φ(x_proj + h_{t−1} W_hhᵀ + b_hh).

    x_proj: [B, H]; h: [B, H]; weight_hh: [H, H]; returns h_t: [B, H]. Without ``out`` the step is
    functional and differentiable; with ``out`` it writes in place (the caller has already added
    b_hh to x_proj, and passes ``bias_hh=None``).
    """
    if out is None:
        return ACTIVATIONS[nonlinearity](x_proj + F.linear(h, weight_hh, bias_hh))
    torch.addmm(x_proj, h, weight_hh.T, out=out)
    return _ACTIVATIONS_INPLACE[nonlinearity](out)


@dataclass
class SRNTape:
    h: torch.Tensor  # [T+1, B, H], h[0] = h_0
    dphi: torch.Tensor  # [T, B, H], φ′(a_t): the SRN's only local derivative

    @property
    def final(self) -> tuple[torch.Tensor, ...]:
        return (self.h[-1],)


class SRNArchitecture(Architecture):
    name = "srn"
    label = "SRN"
    gates = ("h",)

    def __init__(self, nonlinearity: str = "tanh") -> None:
        if nonlinearity not in ACTIVATIONS:
            raise ValueError(f"nonlinearity must be one of {', '.join(NONLINEARITIES)}, got {nonlinearity!r}")
        self.nonlinearity = nonlinearity

    @property
    def derivative_bound(self) -> float:
        return DERIVATIVE_BOUNDS[self.nonlinearity]

    def options(self) -> dict:
        return {"nonlinearity": self.nonlinearity}

    def step(self, x_proj, state, weight_hh, bias_hh, hook: StateHook = no_hook):
        return (hook("h", srn_step(x_proj, state[0], weight_hh, bias_hh, self.nonlinearity)),)

    def forward_sweep(self, x_proj, state, weight_hh, bias_hh) -> SRNTape:
        """Eq. (SRN) for all steps, keeping h_t. x_proj: [T, B, H]; state: (h_0 [B, H],).
        Compiled (forward_steps.cpp) where available, else step by step."""
        T = x_proj.shape[0]
        h = stack_states(state[0], T)
        x_proj = x_proj if bias_hh is None else x_proj + bias_hh  # b_hh added once for all steps
        compiled = kernels(x_proj)
        if compiled is not None:
            compiled.srn_forward(h, x_proj.contiguous(), weight_hh.contiguous(), NONLINEARITIES.index(self.nonlinearity))
            return SRNTape(h, ACTIVATION_DERIVATIVES[self.nonlinearity](h[1:]))
        for t in range(T):
            srn_step(x_proj[t], h[t], weight_hh, None, self.nonlinearity, out=h[t + 1])
        return SRNTape(h, ACTIVATION_DERIVATIVES[self.nonlinearity](h[1:]))

    def tape_from_states(self, x_proj, h, state, weight_hh, bias_hh) -> SRNTape:
        """φ′(a_t) follows from h_t alone (1 − h² for tanh, [h > 0] for relu): nothing to recompute."""
        return SRNTape(h, ACTIVATION_DERIVATIVES[self.nonlinearity](h[1:]))

    def backward_sweep(self, tape: SRNTape, scale: CarryScale, grad_final, weight_hh,
                       take_projections: Optional[TakeProjections] = None, norms: Optional[RowNorms] = None,
                       weight_ih: Optional[torch.Tensor] = None) -> SweepGrads:
        """Eq. (SRN-back): δ_t = ∂⁺L/∂h_t + (δ_{t+1} ⊙ φ′(a_{t+1})) W_hh, with δ beyond the last
        step from ``grad_final`` = (∂L/∂h_n,)."""
        explicit = scale.explicit
        T = explicit.shape[0]
        dh = torch.empty_like(explicit)
        carry = grad_final[0].clone()
        compiled = kernels(explicit)
        input_grad = InputGrad(explicit, weight_ih, compiled)
        # ∂L/∂a_t, a_t the pre-activation: the gradient on both projections
        projections = Projections(explicit, explicit.shape[2:], 1, take_projections, compiled is not None,
                                  input_grad.keeps)

        def after_entering(t: int) -> None:  # δh_t is in dh[t]: eq. (SRN-back) down to the next carry
            a = projections.at(t)[0]
            torch.mul(dh[t], tape.dphi[t], out=a)
            torch.mm(a, weight_hh, out=carry)
            input_grad.step(t, a)

        def compiled_span(hi: int, lo: int, entry) -> None:  # sweep_steps.cpp: entering and after_entering
            measure = (None, None) if norms is None else norms.outputs(hi, lo)
            compiled.srn_steps(carry, dh, projections.buffers[0], tape.dphi, weight_hh, weight_ih, input_grad.buffer,
                               hi, lo, *measure, *(entry or (None,) * 4))

        scale.track(dh)
        run_spans(scale, T, (carry,), dh, after_entering, None if compiled is None else compiled_span, projections)
        return SweepGrads(dh, None, (carry,), input_grad.result(projections))

    def step_jacobians(self, tape: SRNTape, weight_hh) -> Iterator[torch.Tensor]:
        """Eq. (JAC-SRN): ∂h_t/∂h_{t−1} = diag(φ′(a_t)) W_hh. Each [B, H, H]."""
        for t in range(tape.dphi.shape[0]):
            yield diag_times(tape.dphi[t], weight_hh)
