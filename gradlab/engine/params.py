"""The parameter gradients of one layer and direction from its backward sweep: eq. (PARAM-grads) on
plain gradients, and eq. (LOG-params) on the log-domain sweep's unit-size gradients and per-step
scales (docs/derivations.md)."""

from __future__ import annotations

import math

import torch

from gradlab.engine.logscale import LOG_ZERO, to_plain
from gradlab.models.architectures import SweepGrads


def step_weights(steps: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. (LOG-params): a sum over steps of terms e^{λ_t}·x̂_t is e^{m}·Σ_t e^{λ_t − m}·x̂_t with m the
    largest λ: every weight ≤ 1, so the sum is formed without overflow and scaled once, to inf only
    where the true value overflows (and an exact zero stays zero). steps: λ [T, B] (float64).
    Returns the weights [T, B, 1] in ``dtype`` and m (a 0-d float64 tensor; LOG_ZERO when every
    term is zero)."""
    alive = steps > LOG_ZERO / 2
    top = steps.masked_fill(~alive, -math.inf).max()
    top = torch.where(torch.isfinite(top), top, torch.full_like(top, LOG_ZERO))
    return torch.where(alive, (steps - top).exp(), torch.zeros_like(steps)).to(dtype).unsqueeze(-1), top


def parameter_grads(arch, tape, inputs: torch.Tensor, dxp: torch.Tensor, dyp: torch.Tensor, dh: torch.Tensor,
                    k: int, d: int, bias: bool, projected: bool) -> dict[str, torch.Tensor]:
    """Eq. (PARAM-grads) for layer k, direction d, as one product over all T·B rows each; everything
    in the direction's swept order. inputs: the layer's input [T, B, in]; dxp, dyp: the gradients on
    the input and recurrent projections [T, B, G·H]; dh: ∂L/∂h_t [T, B, H]."""
    suffix = f"_l{k}" + ("_reverse" if d else "")
    dxp2, dyp2 = dxp.flatten(0, 1), dyp.flatten(0, 1)
    params = {"weight_ih" + suffix: dxp2.T @ inputs.flatten(0, 1),
              "weight_hh" + suffix: dyp2.T @ tape.h[:-1].flatten(0, 1)}
    if bias:
        params["bias_ih" + suffix], params["bias_hh" + suffix] = dxp2.sum(0), dyp2.sum(0)
    if projected:  # for the projection: ∂L/∂W_hr = Σ_t δh_tᵀ m_t
        params["weight_hr" + suffix] = dh.flatten(0, 1).T @ arch.projection_input(tape).flatten(0, 1)
    return params


def log_domain_parameter_grads(arch, tape, inputs: torch.Tensor, g: SweepGrads, steps: torch.Tensor, k: int, d: int,
                               bias: bool, projected: bool) -> dict[str, torch.Tensor]:
    """Eq. (PARAM-grads) on the log-domain sweep ``g`` (unit-size gradients, λ = ``steps`` [T, B]),
    each sum formed on the largest step's scale (eq. LOG-params) and returned plain."""
    w, top = step_weights(steps, g.dh.dtype)
    dxp = g.dx_proj * w
    dyp = dxp if g.dh_proj is g.dx_proj else g.dh_proj * w
    dh = g.dh * w if projected else g.dh
    params = parameter_grads(arch, tape, inputs, dxp, dyp, dh, k, d, bias, projected)
    return {name: to_plain(v, top.expand(v.shape[:-1])) for name, v in params.items()}
