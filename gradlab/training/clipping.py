"""Gradient norms per parameter and the three clipping modes of ``gradlab train``.

- ``"none"``: gradients as they are;
- ``"global"``: one factor for all parameters, so that the norm of all gradients together is at
  most ``max_norm`` (Pascanu et al. 2013; ``torch.nn.utils.clip_grad_norm_``);
- ``"per-param"``: each parameter's gradient rescaled to norm at most ``max_norm`` on its own, as
  Paddle's ``ClipGradByNorm`` in the NNDL book (6.2.3) does.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

CLIP_MODES = ("none", "global", "per-param")


def gradient_norms(named: Iterable[tuple[str, nn.Parameter]]) -> dict[str, float]:
    """L2 norm of each parameter's gradient (0.0 where it has none), by parameter name."""
    named = [(n, p) for n, p in named if p.requires_grad]
    norms = [p.grad.detach().norm() if p.grad is not None else torch.zeros(()) for _, p in named]
    values = torch.stack([n.to(torch.float64).cpu() for n in norms]).tolist() if norms else []
    return dict(zip((n for n, _ in named), values))


def clip_gradients(params: Iterable[nn.Parameter], mode: str, max_norm: float) -> None:
    """Rescale the gradients of ``params`` in place by ``mode`` (see the module docstring)."""
    if mode not in CLIP_MODES:
        raise ValueError(f"clip mode must be one of {CLIP_MODES}, got {mode!r}")
    grads = [p for p in params if p.grad is not None]
    if mode == "global":
        nn.utils.clip_grad_norm_(grads, max_norm)
    elif mode == "per-param":
        for p in grads:
            nn.utils.clip_grad_norm_([p], max_norm)
