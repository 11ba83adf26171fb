"""Jacobians of the final state with respect to every earlier state and input, by one sweep.

Row-vector convention: V_t = ∂s_{T}/∂s_t is an S×S block (S the full state size: h, or (h, c) for
the LSTM, all layers). It starts as the identity at t = T − 1 and is carried backwards by the
one-step Jacobians, V_{t−1} = V_t J_t (eqs. JAC-*): S cotangents swept back together once, instead
of one backward pass per t. The input Jacobian is ∂s_T/∂x_t = V_t ∂s_t/∂x_t.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.func import jacrev, vmap

from gradlab.analysis.state_jacobians import flat_step, state_jacobians, state_size
from gradlab.models.recurrent import RecurrentModel


@dataclass
class JacobianSpectra:
    """Singular values against distance k = T − 1 − t (row k is distance k), per sample.

    state: [T, B, S] singular values of ∂s_{T−1}/∂s_t, descending (or [T, B, n] when only some are kept)
    input: [T, B, min(S, I)] singular values of ∂s_{T−1}/∂x_t
    """

    state: np.ndarray
    input: np.ndarray

    def largest(self, which: str = "state") -> np.ndarray:
        return getattr(self, which)[..., 0]

    def smallest(self, which: str = "state") -> np.ndarray:
        return getattr(self, which)[..., -1]


def jacobian_spectra(model: RecurrentModel, x: torch.Tensor, full: bool = False) -> JacobianSpectra:
    """Singular values of ∂s_{T−1}/∂s_t and ∂s_{T−1}/∂x_t for every t, from a zero initial state.

    x: [T, B, I] time-major. With ``full`` every singular value is kept, else the largest and the
    smallest. The state Jacobians of all steps are formed on the way forward (derived formulas for
    one layer, jacrev for stacks); the sweep back is one batched S×S product per step.
    """
    T, B, I = x.shape
    S = state_size(model)
    s0 = x.new_zeros(B, S)
    step = flat_step(model)
    input_jac = vmap(jacrev(step, argnums=1))
    with torch.no_grad():
        J = list(state_jacobians(model, x, s0))  # J[t] = ∂s_t/∂s_{t−1}, [B, S, S]
        states = [s0]
        for t in range(T - 1):
            states.append(vmap(step)(states[-1], x[t]))
    keep = (lambda sv: sv) if full else (lambda sv: sv[..., [0, -1]])
    state_sv, input_sv = [], []
    V = torch.eye(S, dtype=x.dtype, device=x.device).expand(B, S, S).clone()  # ∂s_{T−1}/∂s_{T−1}
    for t in range(T - 1, -1, -1):
        # V = ∂s_{T−1}/∂s_t here; the input of step t enters s_t
        Jx = input_jac(states[t], x[t]).detach()  # [B, S, I] = ∂s_t/∂x_t
        with torch.no_grad():
            input_sv.append(keep(torch.linalg.svdvals(V @ Jx)))
            V = V @ J[t]  # now ∂s_{T−1}/∂s_{t−1}
            state_sv.append(keep(torch.linalg.svdvals(V)))
    # state_sv[j] is ∂s_{T−1}/∂s_{T−2−j}, distance j+1; distance 0 is the identity
    ident = keep(torch.ones(B, S, dtype=x.dtype, device=x.device))
    state = torch.stack([ident] + state_sv[:-1]).cpu().numpy()
    return JacobianSpectra(state=state, input=torch.stack(input_sv).cpu().numpy())
