"""What theory predicts for the decay, to put next to what is measured.

- SRN: the Pascanu–Mikolov–Bengio (2013) bound on the per-step factor, η = γ·σ_max(W_hh), with
  γ = sup|φ′| (1 for tanh, ReLU and the identity), and the spectral radius of W_hh.
- LSTM: the running product of forget gates along the actual trajectory, ∏ f_t, which scales the
  cell path of ∂L/∂c_t (docs/derivations.md, section 6).
- All models: Lyapunov exponents of the forward dynamics driven by the input, by the QR method
  on the full state Jacobians (Vogt et al. 2022; Engelken, Wolf & Abbott 2023): the largest one
  predicts the asymptotic per-step growth (> 0) or decay (< 0) of ‖∂h_T/∂h_t‖.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch.func import jacrev, vmap

from gradlab.models.architectures import ARCHITECTURES
from gradlab.models.cells import gru_gates, gru_update, lstm_cell, lstm_gates, lstm_hidden, srn_step
from gradlab.models.recurrent import RecurrentModel, State

#: sup |φ′| per SRN nonlinearity, the γ of the Pascanu bound
GAMMA = {"tanh": 1.0, "relu": 1.0, "linear": 1.0}


def pascanu_bound(model: RecurrentModel, layer: int = -1) -> dict:
    """SRN only: {"gamma", "sigma_max", "bound_per_step" = γ·σ_max(W_hh), "spectral_radius"}.

    If the bound is below 1 the gradient must vanish geometrically; above 1 is necessary (not
    sufficient) for it to explode.
    """
    if model.kind != "srn":
        raise ValueError("the Pascanu bound as stated here is for the SRN")
    w = model.layer_parameters(layer % model.num_layers)[1].detach().to(torch.float64).cpu()
    sigma = float(torch.linalg.matrix_norm(w, ord=2))
    gamma = GAMMA[model.nonlinearity]
    return {"gamma": gamma, "sigma_max": sigma, "bound_per_step": gamma * sigma,
            "spectral_radius": float(torch.linalg.eigvals(w).abs().max())}


def _full_step(model: RecurrentModel):
    """One step of all layers as a function of (flat state [S], x_t [I]) → new flat state [S].

    The state is every layer's h (and c for the LSTM): S = L·H or 2·L·H.
    """
    L, H = model.num_layers, model.hidden_size
    n = len(model.state_names)

    def step(s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        parts = s.reshape(L, n, H)
        inp, new = x, []
        for k in range(L):
            w_ih, w_hh, b_ih, b_hh = model.layer_parameters(k)
            proj = torch.nn.functional.linear(inp, w_ih, b_ih)
            h = parts[k, 0]
            if model.kind == "srn":
                out = (srn_step(proj, h, w_hh, b_hh, model.nonlinearity),)
            elif model.kind == "gru":
                _, z, g, _ = gru_gates(proj, h, w_hh, b_hh)
                out = (gru_update(z, g, h),)
            else:
                i, f, g, o = lstm_gates(proj, h, w_hh, b_hh)
                c = lstm_cell(i, f, g, parts[k, 1])
                out = (lstm_hidden(c, o), c)
            new.append(torch.stack(out))
            inp = out[0]
        return torch.stack(new).reshape(-1)

    return step


def lyapunov_exponents(model: RecurrentModel, x: torch.Tensor, k: Optional[int] = None,
                       state: Optional[State] = None) -> np.ndarray:
    """The k largest Lyapunov exponents (natural log per step; all when k is None) of the forward
    dynamics driven by x, by the QR method on the full state Jacobians (LSTM: (h, c); every layer).

    x: [T, B, I] time-major (or [T, I]); returns [B, k] (or [k]), sorted from the largest.
    λ_i = (1/T) Σ_t ln |R_ii(t)|, where Q_t R_t = J_t Q_{t−1} and Q_0 spans the first k axes.
    """
    unbatched = x.dim() == 2
    xs = x.unsqueeze(1) if unbatched else x
    T, B, _ = xs.shape
    L, H, n = model.num_layers, model.hidden_size, len(model.state_names)
    S = L * n * H
    k = S if k is None else k
    if not 1 <= k <= S:
        raise ValueError(f"k must be between 1 and the state size {S}, got {k}")
    if state is None:
        s = xs.new_zeros(B, S)
    else:
        parts = (state,) if isinstance(state, torch.Tensor) else tuple(state)
        parts = [p.unsqueeze(1) if unbatched else p for p in parts]  # [L, B, H] each
        s = torch.stack(parts, dim=1).permute(2, 0, 1, 3).reshape(B, S)
    Q = torch.eye(S, k, dtype=xs.dtype, device=xs.device).expand(B, S, k).clone()
    total = torch.zeros(B, k, dtype=torch.float64, device=xs.device)
    with torch.no_grad():
        for J in _state_jacobians(model, xs, s):  # [B, S, S] for t = 0..T−1
            Q, R = torch.linalg.qr(J @ Q)
            total += torch.diagonal(R, dim1=-2, dim2=-1).abs().to(torch.float64).log()
    exps = (total / T).cpu().numpy()
    exps = -np.sort(-exps, axis=1)
    return exps[0] if unbatched else exps


def _state_jacobians(model: RecurrentModel, xs: torch.Tensor, s: torch.Tensor):
    """Yield the full state Jacobian ∂s_t/∂s_{t−1}, [B, S, S], for every step.

    One layer: the derived formulas (JAC-SRN, JAC-LSTM, JAC-GRU) on the forward tape. Several
    layers: torch.func.jacrev of one step of the whole stack (the layers couple within a step).
    """
    if model.num_layers == 1:
        arch = ARCHITECTURES[model.kind]
        w_ih, w_hh, b_ih, b_hh = model.layer_parameters(0)
        opts = {"nonlinearity": model.nonlinearity} if model.kind == "srn" else {}
        init = tuple(part for part in s.reshape(s.shape[0], -1, model.hidden_size).unbind(1))
        with torch.no_grad():
            tape = arch.forward(torch.nn.functional.linear(xs, w_ih, b_ih), init, w_hh, b_hh, **opts)
            for t in range(xs.shape[0]):
                yield arch.step_jacobian(tape, t, w_hh.detach())
        return
    step = _full_step(model)
    jac, batched_step = vmap(jacrev(step, argnums=0)), vmap(step)
    for t in range(xs.shape[0]):
        yield jac(s, xs[t])
        s = batched_step(s, xs[t])
