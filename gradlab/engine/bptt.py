"""bptt(): backpropagation through time from the hand-derived recurrences, without autograd.

The driver runs each layer's forward sweep (keeping its tape), then the layers' backward sweeps
from the top down: the gradient on a layer's input sequence is the explicit gradient of the
layer below. Everything that does not depend on the recurrence is one batched matrix product per
layer (eq. PARAM-grads in docs/derivations.md):

    ∂L/∂W_ih = Σ_t δx_tᵀ x_t,   ∂L/∂b_ih = Σ_t δx_t,   ∂L/∂x_t = δx_t W_ih,
    ∂L/∂W_hh = Σ_t δy_tᵀ h_{t−1}, ∂L/∂b_hh = Σ_t δy_t,
with δx, δy the gradients on the input and recurrent projections.

With ``log_domain=True`` the backward sweeps carry the adjoint at unit size with a separate log
scale (gradlab/backward/logscale.py), so log10 ‖∂L/∂h_t‖ is exact at any distance, also where the
plain value is 0.0 or inf.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import torch
import torch.nn.functional as F

from gradlab.models.architectures import ARCHITECTURES
from gradlab.engine.logscale import LogScale, PlainScale, log10_norm, split_log, to_plain
from gradlab.models.recurrent import RecurrentModel, State
from gradlab.engine.numerics import stable_norm

GradState = Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]


@dataclass
class BPTTResult:
    """Gradients of L, where ∂L/∂output = grad_output (and ∂L/∂final state = grad_state).

    params:  torch parameter name → gradient (same shape as the parameter)
    dx:      shaped like x
    dh0, dc0 (LSTM; else None): shaped like the initial state, [L, B, H] ([L, H] unbatched)
    dh, dc (LSTM; else None): per layer, time-major [T, B, H] total ∂L/∂h_t, ∂L/∂c_t
    log10_dh, log10_dc: per layer, [T, B] float64 log10 of the per-sample norms of dh, dc — exact
        past under- and overflow when computed with log_domain=True; −inf only for exact zeros
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
    log10_dh: Optional[list[torch.Tensor]] = None
    log10_dc: Optional[list[torch.Tensor]] = None


@dataclass
class LayerBackward:
    """One layer's backward sweep, time-major, plain values (reconstructed in the log domain)."""

    dh: torch.Tensor  # [T, B, H]
    dc: Optional[torch.Tensor]
    log10_dh: torch.Tensor  # [T, B] float64
    log10_dc: Optional[torch.Tensor]
    log10_explicit: torch.Tensor  # [T, B] float64, ‖∂⁺L/∂h_t‖ of this layer
    params: dict[str, torch.Tensor]
    carry: tuple  # plain tuple of [B, H]; in the log domain: ((ĥ, ĉ), log [B])


def forward_tapes(model: RecurrentModel, x_tm: torch.Tensor, init: tuple[torch.Tensor, ...]):
    """Each layer's forward sweep. x_tm: [T, B, I]; init: per state [L, B, H].
    Returns (inputs, tapes): every layer's input sequence and its tape."""
    arch = ARCHITECTURES[model.kind]
    options = {"nonlinearity": model.nonlinearity} if model.kind == "srn" else {}
    inputs, tapes, seq = [], [], x_tm
    for k in range(model.num_layers):
        w_ih, w_hh, b_ih, b_hh = model.layer_parameters(k)
        inputs.append(seq)
        tapes.append(arch.forward(F.linear(seq, w_ih, b_ih), tuple(s[k] for s in init), w_hh, b_hh, **options))
        seq = tapes[-1].h[1:]
    return inputs, tapes


def split_log_state(parts: tuple[torch.Tensor, ...]) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """A state gradient (∂L/∂h[, ∂L/∂c]), each [..., H], as unit-size parts and one log scale [...]."""
    hat, log = split_log(torch.cat(parts, dim=-1))
    return hat.chunk(len(parts), dim=-1), log


def backward_layers(model: RecurrentModel, inputs: list, tapes: list, explicit, ends: list,
                    log_domain: bool):
    """The layers' backward sweeps, top down.

    explicit: ∂⁺L/∂(top layer's h_t), [T, B, H] plain, or (x̂ [T, B, H], log [T, B]) in the log domain.
    ends[k]: the gradient on layer k's final state: a plain tuple of [B, H], or ((ĥ[, ĉ]), log [B]).
    Returns (per-layer LayerBackward, bottom first; ∂L/∂x in the same form as ``explicit``).
    """
    arch = ARCHITECTURES[model.kind]
    layers: list[Optional[LayerBackward]] = [None] * model.num_layers
    for k in reversed(range(model.num_layers)):
        w_ih, w_hh, b_ih, _ = model.layer_parameters(k)
        if log_domain:
            hat, log = explicit
            log10_explicit = log10_norm(hat, log)
            carry_hat, carry_log = ends[k]
            scale = LogScale(hat.contiguous(), log, carry_log)
            g = arch.backward(tapes[k], scale, tuple(c.clone() for c in carry_hat), w_hh)
            steps = scale.steps
            dxp = to_plain(g.dx_proj, steps)
            dyp = dxp if g.dh_proj is g.dx_proj else to_plain(g.dh_proj, steps)
            dh, dc = to_plain(g.dh, steps), None if g.dc is None else to_plain(g.dc, steps)
            log10_dh = log10_norm(g.dh, steps)
            log10_dc = None if g.dc is None else log10_norm(g.dc, steps)
            carry = (g.carry, scale.log)
            explicit = (g.dx_proj @ w_ih, steps)
        else:
            log10_explicit = stable_norm(explicit).log10()
            g = arch.backward(tapes[k], PlainScale(explicit.contiguous()), tuple(c.clone() for c in ends[k]), w_hh)
            dxp, dyp, dh, dc = g.dx_proj, g.dh_proj, g.dh, g.dc
            log10_dh = stable_norm(dh).log10()
            log10_dc = None if dc is None else stable_norm(dc).log10()
            carry = g.carry
            explicit = g.dx_proj @ w_ih  # ∂L/∂(input of layer k) = explicit part for layer k−1
        dxp2, dyp2 = dxp.flatten(0, 1), dyp.flatten(0, 1)
        params = {f"weight_ih_l{k}": dxp2.T @ inputs[k].flatten(0, 1),
                  f"weight_hh_l{k}": dyp2.T @ tapes[k].h[:-1].flatten(0, 1)}
        if b_ih is not None:
            params[f"bias_ih_l{k}"], params[f"bias_hh_l{k}"] = dxp2.sum(0), dyp2.sum(0)
        layers[k] = LayerBackward(dh, dc, log10_dh, log10_dc, log10_explicit, params, carry)
    return layers, explicit


def _parts(value) -> tuple:
    return (value,) if isinstance(value, torch.Tensor) else tuple(value)


def bptt(model: RecurrentModel, x: torch.Tensor, grad_output: torch.Tensor,
         state: Optional[State] = None, grad_state: Optional[GradState] = None,
         log_domain: bool = False) -> BPTTResult:
    """Backpropagation through time from the derived recurrences (runs under ``torch.no_grad()``).

    model: a gradlab SRN, LSTM or GRU. x: as the model takes it ([T, B, I], [B, T, I] if
    batch_first, or [T, I]). grad_output: ∂L/∂output, shaped like the model's output.
    state: the initial state (zeros when None). grad_state: ∂L/∂h_n (LSTM: (∂L/∂h_n, ∂L/∂c_n)),
    shaped like the final state; zero when None. log_domain: carry the adjoint with a separate log
    scale, so that ``log10_dh``/``log10_dc`` are exact where the plain values under- or overflow.
    """
    n_state = len(model.state_names)
    batched = x.dim() == 3
    with torch.no_grad():
        x_tm, g_tm = x, grad_output
        if not batched:
            x_tm, g_tm = x.unsqueeze(1), grad_output.unsqueeze(1)
        elif model.batch_first:
            x_tm, g_tm = x.transpose(0, 1), grad_output.transpose(0, 1)
        init = model._initial_state(state, x_tm, batched)  # validated, [L, B, H] each
        if grad_state is None:
            end_parts = tuple(torch.zeros_like(s) for s in init)
        else:
            end_parts = tuple(p if batched else p.unsqueeze(1) for p in _parts(grad_state))
        ends = [tuple(p[k] for p in end_parts) for k in range(model.num_layers)]
        if log_domain:
            ends = [split_log_state(e) for e in ends]
            g_tm = split_log(g_tm)

        inputs, tapes = forward_tapes(model, x_tm, init)
        layers, dx = backward_layers(model, inputs, tapes, g_tm, ends, log_domain)
        if log_domain:
            dx = to_plain(*dx)
            carries = [tuple(to_plain(c, log) for c in hats) for hats, log in (lay.carry for lay in layers)]
        else:
            carries = [lay.carry for lay in layers]

        params = {name: g for lay in layers for name, g in lay.params.items()}
        params = {name: params[name] for name, _ in model.named_parameters()}
        finals = [torch.stack([t.final[i] for t in tapes]) for i in range(n_state)]
        initial_grads = [torch.stack([c[i] for c in carries]) for i in range(n_state)]
        output = tapes[-1].h[1:]
        if not batched:
            dx, output = dx.squeeze(1), output.squeeze(1)
            finals = [f.squeeze(1) for f in finals]
            initial_grads = [g.squeeze(1) for g in initial_grads]
        elif model.batch_first:
            dx, output = dx.transpose(0, 1), output.transpose(0, 1)
    lstm = n_state == 2
    return BPTTResult(
        params=params, dx=dx, dh0=initial_grads[0], dc0=initial_grads[1] if lstm else None,
        dh=[lay.dh for lay in layers], dc=[lay.dc for lay in layers] if lstm else None,
        output=output, final=finals[0] if not lstm else tuple(finals),
        log10_dh=[lay.log10_dh for lay in layers], log10_dc=[lay.log10_dc for lay in layers] if lstm else None,
    )
