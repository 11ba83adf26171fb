"""Hook points: named identity modules that know the time step.

A model passes each state tensor through a :class:`HookPoint` together with the step index
``t``. With no hook attached the point returns its input unchanged (the cost is one attribute
look-up). A hook is a function ``fn(tensor, t) -> tensor | None``; a returned tensor replaces the
input, ``None`` keeps it. Hooks are attached only for the duration of a ``with attached(...)``
block, so none outlives the call that set it, also when the block raises.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Optional

import torch
from torch import nn

HookFn = Callable[[torch.Tensor, Optional[int]], Optional[torch.Tensor]]


class HookPoint(nn.Module):
    """Identity on a state tensor, with attachable hooks that receive the step index.

    ``t`` is the input position of the step (0-based; the reverse direction of a bidirectional
    layer visits T−1 … 0), ``None`` when the tensor holds a whole sequence (``[T, B, H]``,
    time-major), or — for the reverse direction of a packed batch of unequal lengths, where each
    sample is at its own position — a ``[B]`` tensor of positions.
    """

    def __init__(self) -> None:
        super().__init__()
        self._hook_fns: list[HookFn] = []

    def add(self, fn: HookFn) -> None:
        self._hook_fns.append(fn)

    def remove(self, fn: HookFn) -> None:
        self._hook_fns.remove(fn)

    @property
    def has_hooks(self) -> bool:
        return bool(self._hook_fns)

    def forward(self, x: torch.Tensor, t: Optional[int] = None) -> torch.Tensor:
        for fn in self._hook_fns:
            out = fn(x, t)
            if out is not None:
                x = out
        return x


@contextmanager
def attached(pairs: Iterable[tuple[HookPoint, HookFn]]) -> Iterator[None]:
    """Attach each ``fn`` to its hook point for the duration of the block.

    Every hook attached here is removed on exit, whether the block returns or raises.
    """
    done: list[tuple[HookPoint, HookFn]] = []
    try:
        for point, fn in pairs:
            point.add(fn)
            done.append((point, fn))
        yield
    finally:
        for point, fn in reversed(done):
            point.remove(fn)


def hook_points(module: nn.Module) -> dict[str, HookPoint]:
    """All hook points of ``module`` by their qualified names (e.g. ``"hook_h.0"``)."""
    return {name: m for name, m in module.named_modules() if isinstance(m, HookPoint)}
