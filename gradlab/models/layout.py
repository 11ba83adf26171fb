"""Sequence layouts at the boundary: the one place that knows batch_first and unbatched inputs.

Torch's recurrent modules take ``[T, B, F]``, ``[B, T, F]`` with ``batch_first=True``, or ``[T, F]``
unbatched, and states ``[L, B, H]`` (``[L, H]`` unbatched). Inside gradlab everything is
time-major and batched, ``[T, B, F]`` and ``[L, B, H]``; a :class:`SequenceLayout` converts in and out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SequenceLayout:
    batch_first: bool
    batched: bool

    @classmethod
    def of(cls, x: torch.Tensor, batch_first: bool, owner: str = "the model") -> "SequenceLayout":
        """The layout of ``x`` as a module with this ``batch_first`` reads it."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{owner}: expected a tensor input, got {type(x).__name__}")
        if x.dim() not in (2, 3):
            raise ValueError(f"{owner}: expected a 2-D (unbatched) or 3-D input, got {x.dim()}-D of shape {list(x.shape)}")
        return cls(bool(batch_first), x.dim() == 3)

    def time_major(self, x: torch.Tensor) -> torch.Tensor:
        """x in this layout → [T, B, F]."""
        if not self.batched:
            return x.unsqueeze(1)
        return x.transpose(0, 1) if self.batch_first else x

    def restore(self, x: torch.Tensor) -> torch.Tensor:
        """[T, B, F] → this layout (the inverse of :meth:`time_major`)."""
        if not self.batched:
            return x.squeeze(1)
        return x.transpose(0, 1) if self.batch_first else x

    def state_in(self, state: torch.Tensor) -> torch.Tensor:
        """A state as the module takes it ([L, B, H], or [L, H] unbatched) → [L, B, H]."""
        return state if self.batched else state.unsqueeze(1)

    def state_out(self, state: torch.Tensor) -> torch.Tensor:
        """[L, B, H] → the state as the module returns it."""
        return state if self.batched else state.squeeze(1)
