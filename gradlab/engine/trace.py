"""Trace: what one forward and backward pass left at every layer and step.

For each layer and step it holds the per-sample norm of the **total** derivative ∂L/∂h_t (and
∂L/∂c_t for the LSTM) — every path from the state to the loss, through all later steps — and of
the **explicit** part ∂⁺L/∂h_t, which reaches h_t without passing through the layer's own
recurrence (for the top layer: the loss's direct dependence on output[t]; for a lower layer: what
arrives through the layer above at the same step). Full tensors are kept on request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch


@dataclass
class Trace:
    """Per-layer, per-step gradients, time in forward order.

    norms[name][k]:        [T, B] float64, ‖∂L/∂name_t‖ of layer k (name "h", or "c" for LSTM)
    explicit_norms[k]:     [T, B] float64, ‖∂⁺L/∂h_t‖ of layer k
    grads[name][k]:        [T, B, H] total gradients (only when kept)
    explicit_grads[k]:     [T, B, H] explicit gradients (only when kept)
    initial_grads[name]:   [L, B, H] ∂L/∂name_0, the gradient on the initial state (when known)
    log10_norms[name][k]:  [T, B] float64, log10 ‖∂L/∂name_t‖ from the log-domain backward pass:
                           exact where the plain norm is 0.0 or inf; −inf only for exact zeros
    """

    model_kind: str
    loss: float
    norms: dict[str, list[np.ndarray]]
    explicit_norms: list[np.ndarray]
    initial_grads: Optional[dict[str, torch.Tensor]] = None
    grads: Optional[dict[str, list[torch.Tensor]]] = None
    explicit_grads: Optional[list[torch.Tensor]] = None
    log10_norms: Optional[dict[str, list[np.ndarray]]] = None
    meta: dict = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        """The recorded state names: ("h",) or ("h", "c")."""
        return tuple(self.norms)

    @property
    def num_layers(self) -> int:
        return len(self.explicit_norms)

    @property
    def num_steps(self) -> int:
        return self.explicit_norms[0].shape[0]

    @property
    def has_tensors(self) -> bool:
        return self.grads is not None

    def _check(self, name: str, layer: int) -> int:
        if name not in self.norms:
            raise KeyError(f"no {name!r} in this trace of a {self.model_kind}; it has {list(self.names)}")
        if not -self.num_layers <= layer < self.num_layers:
            raise IndexError(f"layer {layer} out of range for {self.num_layers} layer(s)")
        return layer % self.num_layers

    def grad_norms(self, name: str = "h", layer: int = -1) -> np.ndarray:
        """[T, B]: per-sample L2 norm over hidden units of the total ∂L/∂name_t."""
        return self.norms[name][self._check(name, layer)]

    def log10_grad_norms(self, name: str = "h", layer: int = -1) -> np.ndarray:
        """[T, B]: log10 of the per-sample norm of the total ∂L/∂name_t, finite wherever the true
        gradient is non-zero (also where ``grad_norms`` has underflowed to 0.0 or overflowed)."""
        if self.log10_norms is None:
            raise ValueError("this trace has no log-domain norms (record(..., log_domain=True) provides them)")
        return self.log10_norms[name][self._check(name, layer)]

    def explicit_grad_norms(self, layer: int = -1) -> np.ndarray:
        """[T, B]: per-sample L2 norm of the explicit part ∂⁺L/∂h_t."""
        return self.explicit_norms[self._check("h", layer)]

    def _tensors(self):
        if self.grads is None:
            raise ValueError("this trace kept only norms; record with full=True to keep the tensors")
        return self.grads

    def grad(self, name: str = "h", layer: int = -1) -> torch.Tensor:
        """[T, B, H]: the total ∂L/∂name_t (time-major), when the trace kept tensors."""
        return self._tensors()[name][self._check(name, layer)]

    def explicit_grad(self, layer: int = -1) -> torch.Tensor:
        """[T, B, H]: the explicit ∂⁺L/∂h_t (time-major), when the trace kept tensors."""
        self._tensors()
        return self.explicit_grads[self._check("h", layer)]
