"""Theory's predictions for one analysed model, in the form the summary and the figure use.

Each prediction is a per-step factor (log10 per step) to set beside the fitted one:
- "lyapunov": e^{λ_1}, the largest Lyapunov exponent of the driven forward dynamics, computed on
  the first LYAPUNOV_STEPS steps and averaged over the batch;
- "pascanu_bound" (SRN): γ·σ_max(W_hh), an upper bound on the per-step factor;
- "forget_gates" (LSTM): the geometric mean of the forget gates along the actual trajectory (over
  units, samples and the steps read), the factor of ∂L/∂c_t's cell path; its running product is
  the curve ``forget_gate_curve``.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from gradlab.models.recurrent import RecurrentModel
from gradlab.analysis.theory import lyapunov_exponents, pascanu_bound

#: Steps of the input on which the Lyapunov exponent is computed (the QR method costs one S×S
#: Jacobian a step, so it is not run on million-step sequences in full).
LYAPUNOV_STEPS = 1000


def predictions(model: RecurrentModel, x_prefix: torch.Tensor,
                forget_log10: Optional[np.ndarray]) -> dict[str, dict]:
    """x_prefix: [S, B, I] the first steps of the input; forget_log10: [T] mean log10 f_t per step
    (LSTM) or None. Returns {name: {"log10_per_step", "factor_per_step", ...}}."""
    out = {}
    lam = float(np.mean(lyapunov_exponents(model, x_prefix, k=1)[:, 0]))
    out["lyapunov"] = {"log10_per_step": lam / math.log(10), "factor_per_step": math.exp(lam),
                       "exponent_per_step": lam, "unit": "natural log per step",
                       "steps_used": int(x_prefix.shape[0]), "averaged_over_batch": int(x_prefix.shape[1])}
    if model.architecture.derivative_bound is not None:
        b = pascanu_bound(model)
        out["pascanu_bound"] = {"log10_per_step": math.log10(b["bound_per_step"]) if b["bound_per_step"] > 0 else -math.inf,
                                "factor_per_step": b["bound_per_step"], "gamma": b["gamma"],
                                "sigma_max": b["sigma_max"], "spectral_radius": b["spectral_radius"]}
    if forget_log10 is not None:
        g = float(np.mean(forget_log10))
        out["forget_gates"] = {"log10_per_step": g, "factor_per_step": 10.0**g, "steps_used": len(forget_log10)}
    return out


def forget_gate_curve(forget_log10: np.ndarray, start: float) -> np.ndarray:
    """The running product of forget gates back from the loss step, as log10 against distance:
    curve[k] = start + Σ_{j = T−k}^{T−1} mean log10 f_j   (δc_t ⊇ δc_{T−1} ⊙ ∏_{j>t} f_j)."""
    back = forget_log10[::-1]  # back[i] is step T−1−i
    return start + np.concatenate([[0.0], np.cumsum(back[:-1])])
