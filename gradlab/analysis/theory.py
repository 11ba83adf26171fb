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

from gradlab.analysis.state_jacobians import flatten_state, state_jacobians, state_size
from gradlab.models.layout import SequenceLayout
from gradlab.models.recurrent import RecurrentModel, State, state_parts
from gradlab.models.regimes import spectral_radius


def pascanu_bound(model: RecurrentModel, layer: int = -1) -> dict:
    """{"gamma", "sigma_max", "bound_per_step" = γ·σ_max(W_hh), "spectral_radius"} of an
    architecture whose step is φ(· + h W_hhᵀ) with |φ′| ≤ γ (the SRN).

    If the bound is below 1 the gradient must vanish geometrically; above 1 is necessary (not
    sufficient) for it to explode.
    """
    gamma = model.architecture.derivative_bound
    if gamma is None:
        raise ValueError(f"the Pascanu bound as stated here is for the SRN, not the {model.architecture.label}")
    w = model.layer_parameters(layer % model.num_layers)[1].detach().to(torch.float64).cpu()
    sigma = float(torch.linalg.matrix_norm(w, ord=2))
    return {"gamma": gamma, "sigma_max": sigma, "bound_per_step": gamma * sigma, "spectral_radius": spectral_radius(w)}


def lyapunov_exponents(model: RecurrentModel, x: torch.Tensor, k: Optional[int] = None,
                       state: Optional[State] = None) -> np.ndarray:
    """The k largest Lyapunov exponents (natural log per step; all when k is None) of the forward
    dynamics driven by x, by the QR method on the full state Jacobians (LSTM: (h, c); every layer).

    x: [T, B, I] time-major (or [T, I]); returns [B, k] (or [k]), sorted from the largest.
    λ_i = (1/T) Σ_t ln |R_ii(t)|, where Q_t R_t = J_t Q_{t−1} and Q_0 spans the first k axes.
    """
    layout = SequenceLayout.of(x, batch_first=False, owner="lyapunov_exponents")
    xs = layout.time_major(x)
    T, B, _ = xs.shape
    S = state_size(model)
    k = S if k is None else k
    if not 1 <= k <= S:
        raise ValueError(f"k must be between 1 and the state size {S}, got {k}")
    if state is None:
        s = xs.new_zeros(B, S)
    else:
        s = flatten_state(tuple(layout.state_in(p) for p in state_parts(state)))
    Q = torch.eye(S, k, dtype=xs.dtype, device=xs.device).expand(B, S, k).clone()
    total = torch.zeros(B, k, dtype=torch.float64, device=xs.device)
    with torch.no_grad():
        for J in state_jacobians(model, xs, s):  # [B, S, S] for t = 0..T−1
            Q, R = torch.linalg.qr(J @ Q)
            total += torch.diagonal(R, dim1=-2, dim2=-1).abs().to(torch.float64).log()
    exps = (total / T).cpu().numpy()
    exps = -np.sort(-exps, axis=1)
    return exps if layout.batched else exps[0]

