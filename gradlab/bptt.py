"""bptt(): backpropagation through time from the hand-derived recurrences, without autograd.

The driver runs each layer's forward sweep (keeping its tape), then the layers' backward sweeps
from the top down: the gradient on a layer's input sequence is the explicit gradient of the
layer below. Everything that does not depend on the recurrence is one batched matrix product per
layer (eq. PARAM-grads in docs/derivations.md):

    ∂L/∂W_ih = Σ_t δx_tᵀ x_t,   ∂L/∂b_ih = Σ_t δx_t,   ∂L/∂x_t = δx_t W_ih,
    ∂L/∂W_hh = Σ_t δy_tᵀ h_{t−1}, ∂L/∂b_hh = Σ_t δy_t,
with δx, δy the gradients on the input and recurrent projections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import torch
import torch.nn.functional as F

from gradlab.backward import ARCHITECTURES
from gradlab.models import RecurrentModel, State

GradState = Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]


@dataclass
class BPTTResult:
    """Gradients of L, where ∂L/∂output = grad_output (and ∂L/∂final state = grad_state).

    params:  torch parameter name → gradient (same shape as the parameter)
    dx:      shaped like x
    dh0, dc0 (LSTM; else None): shaped like the initial state, [L, B, H] ([L, H] unbatched)
    dh, dc (LSTM; else None): per layer, time-major [T, B, H] total ∂L/∂h_t, ∂L/∂c_t
    output, final: the forward pass's output (laid out like x) and final state, as the model returns them
    """

    params: dict[str, torch.Tensor]
    dx: torch.Tensor
    dh0: torch.Tensor
    dc0: Optional[torch.Tensor]
    dh: list[torch.Tensor]
    dc: Optional[list[torch.Tensor]]
    output: torch.Tensor
    final: State


def _parts(value, n: int) -> tuple:
    return (value,) if isinstance(value, torch.Tensor) else tuple(value) if value is not None else (None,) * n


def bptt(model: RecurrentModel, x: torch.Tensor, grad_output: torch.Tensor,
         state: Optional[State] = None, grad_state: Optional[GradState] = None) -> BPTTResult:
    """Backpropagation through time from the derived recurrences (runs under ``torch.no_grad()``).

    model: a gradlab SRN, LSTM or GRU. x: as the model takes it ([T, B, I], [B, T, I] if
    batch_first, or [T, I]). grad_output: ∂L/∂output, shaped like the model's output.
    state: the initial state (zeros when None). grad_state: ∂L/∂h_n (LSTM: (∂L/∂h_n, ∂L/∂c_n)),
    shaped like the final state; zero when None.
    """
    arch = ARCHITECTURES[model.kind]
    options = {"nonlinearity": model.nonlinearity} if model.kind == "srn" else {}
    n_state = len(model.state_names)
    batched = x.dim() == 3
    with torch.no_grad():
        x_tm, g_tm = x, grad_output
        if not batched:
            x_tm, g_tm = x.unsqueeze(1), grad_output.unsqueeze(1)
        elif model.batch_first:
            x_tm, g_tm = x.transpose(0, 1), grad_output.transpose(0, 1)
        init = model._initial_state(state, x_tm, batched)  # validated, [L, B, H] each
        ends = [g if g is None or batched else g.unsqueeze(1) for g in _parts(grad_state, n_state)]

        inputs, tapes = [], []
        seq = x_tm
        for k in range(model.num_layers):
            w_ih, w_hh, b_ih, b_hh = model.layer_parameters(k)
            inputs.append(seq)
            tape = arch.forward(F.linear(seq, w_ih, b_ih), tuple(s[k] for s in init), w_hh, b_hh, **options)
            tapes.append(tape)
            seq = tape.h[1:]
        output = seq

        params: dict[str, torch.Tensor] = {}
        dh, dc, carries = [None] * model.num_layers, [None] * model.num_layers, [None] * model.num_layers
        explicit = g_tm
        for k in reversed(range(model.num_layers)):
            w_ih, w_hh, b_ih, _ = model.layer_parameters(k)
            carry = tuple(torch.zeros_like(init[i][k]) if e is None else e[k].clone() for i, e in enumerate(ends))
            grads = arch.backward(tapes[k], explicit.contiguous(), carry, w_hh)
            dh[k], dc[k], carries[k] = grads.dh, grads.dc, grads.carry
            dxp, dyp = grads.dx_proj.flatten(0, 1), grads.dh_proj.flatten(0, 1)
            params[f"weight_ih_l{k}"] = dxp.T @ inputs[k].flatten(0, 1)
            params[f"weight_hh_l{k}"] = dyp.T @ tapes[k].h[:-1].flatten(0, 1)
            if b_ih is not None:
                params[f"bias_ih_l{k}"] = dxp.sum(0)
                params[f"bias_hh_l{k}"] = dyp.sum(0)
            explicit = grads.dx_proj @ w_ih  # ∂L/∂(input of layer k) = explicit part for layer k−1
        params = {name: params[name] for name, _ in model.named_parameters()}

        finals = [torch.stack([tapes[k].final[i] for k in range(model.num_layers)]) for i in range(n_state)]
        initial_grads = [torch.stack([carries[k][i] for k in range(model.num_layers)]) for i in range(n_state)]
        dx = explicit
        if not batched:
            dx, output = dx.squeeze(1), output.squeeze(1)
            finals = [f.squeeze(1) for f in finals]
            initial_grads = [g.squeeze(1) for g in initial_grads]
        elif model.batch_first:
            dx, output = dx.transpose(0, 1), output.transpose(0, 1)
    return BPTTResult(
        params=params, dx=dx, dh0=initial_grads[0], dc0=initial_grads[1] if n_state == 2 else None,
        dh=dh, dc=dc if n_state == 2 else None, output=output,
        final=finals[0] if n_state == 1 else tuple(finals),
    )
