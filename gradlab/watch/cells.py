"""Cells stepped in the user's own loop: each call is a time step, recorded by autograd.

``nn.RNNCell``/``nn.LSTMCell``/``nn.GRUCell`` are found by type; any module named in
``watch(model, cells=[…])`` counts too, if its forward returns the next state (a tensor, or a
tuple of them such as (h, c)). The total gradient of the state a call returns is what a tensor
hook on that tensor receives — every path, exactly as ``torch.autograd.grad(loss, h_t)`` gives it,
no hand derivation needed. The explicit part is what reaches the state other than through the next
call's state argument: when the next call is handed the returned tensor itself, the watch hands it
an alias (``h.view_as(h)``) instead, whose gradient is exactly the part that flows on through the
recurrence, and explicit = total − that part. Past float underflow autograd itself returns 0.0:
such steps are reported with a plain norm of 0 and log10 −inf (no made-up value).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from gradlab.engine.numerics import stable_norm
from gradlab.engine.trace import Trace

CELLS = (nn.RNNCell, nn.LSTMCell, nn.GRUCell)
ENGINE = ("gradlab.watch (cells): autograd's total gradient of each returned state through a tensor hook; the "
          "explicit part is the total minus the gradient through the next call's state argument")


def state_tensors(output: Any) -> tuple[torch.Tensor, ...]:
    """The state a cell call returns, as a tuple of tensors [B, H] (or [H])."""
    if isinstance(output, torch.Tensor):
        return (output,)
    if isinstance(output, (tuple, list)) and output and all(isinstance(o, torch.Tensor) for o in output):
        return tuple(output)
    raise TypeError(f"watch: a cell must return its next state as a tensor or a tuple of tensors, "
                    f"got {type(output).__name__}")


class CellRecorder:
    """The calls of one cell during one recorded step."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[dict] = []  # per call: the returned parts, their total gradients, the part via the next call

    def before(self, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        """Hand the next call aliases of the previous call's returned tensors, wherever it passes them."""
        if not self.calls:
            return args, kwargs
        previous = self.calls[-1]

        def swap(value):
            if isinstance(value, torch.Tensor):
                for i, part in enumerate(previous["parts"]):
                    if value is part:
                        alias = part.view_as(part)
                        alias.register_hook(lambda g, i=i: self._keep(previous, "via_next", i, g))
                        return alias
                return value
            if isinstance(value, (tuple, list)):
                return type(value)(swap(v) for v in value)
            return value

        return tuple(swap(a) for a in args), {k: swap(v) for k, v in kwargs.items()}

    def after(self, output: Any) -> None:
        parts = state_tensors(output)
        call = {"parts": parts, "total": [None] * len(parts), "via_next": [None] * len(parts)}
        for i, part in enumerate(parts):
            if part.requires_grad:
                part.register_hook(lambda g, i=i: self._keep(call, "total", i, g))
        self.calls.append(call)

    @staticmethod
    def _keep(call: dict, which: str, i: int, g: torch.Tensor) -> None:
        call[which][i] = g.detach().clone()

    def finish(self, full: bool) -> Trace:
        """The Trace of the recorded calls: T = the number of calls, one layer, one direction."""
        first = self.calls[0]["parts"]
        names = ("h", "c")[:len(first)] if len(first) <= 2 else tuple(f"s{i}" for i in range(len(first)))
        shape = first[0].reshape(-1, first[0].shape[-1]).shape  # [B, H]
        zeros = lambda: first[0].new_zeros(shape)  # noqa: E731  a state no gradient reached
        for call in self.calls:
            if tuple(call["parts"][0].reshape(-1, shape[-1]).shape) != tuple(shape):
                raise ValueError(f"watch: {self.name} was called with states of different shapes in one step")
        total = {n: torch.stack([(c["total"][i] if c["total"][i] is not None else zeros()).reshape(shape)
                                 for c in self.calls]) for i, n in enumerate(names)}  # [T, B, H]
        via_next = torch.stack([(c["via_next"][0] if c["via_next"][0] is not None else zeros()).reshape(shape)
                                for c in self.calls])
        explicit = total[names[0]] - via_next
        as_array = lambda t: stable_norm(t).cpu().numpy()[None, None]  # noqa: E731  [1, 1, T, B]
        norms = {n: as_array(g) for n, g in total.items()}
        with np.errstate(divide="ignore"):  # an exact 0 (autograd's value past underflow) is −inf
            log10 = {n: np.log10(v) for n, v in norms.items()}
            explicit_norms = as_array(explicit)
            explicit_log10 = np.log10(explicit_norms)
        return Trace(kind="cell", hidden_size=shape[-1], norms=norms, explicit_norms=explicit_norms,
                     log10_norms=log10, explicit_log10_norms=explicit_log10,
                     grads={n: g[None, None] for n, g in total.items()} if full else None,
                     explicit_grads=explicit[None, None] if full else None,
                     meta={"engine": ENGINE, "calls": len(self.calls), "dtype": str(first[0].dtype).replace("torch.", ""),
                           "device": str(first[0].device),
                           "log10": "log10 of autograd's plain norm; -inf where it is exactly 0 (underflow)"})
