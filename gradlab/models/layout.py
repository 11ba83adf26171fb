"""Sequence layouts at the boundary: the one place that knows batch_first, unbatched and packed inputs.

Torch's recurrent modules take ``[T, B, F]``, ``[B, T, F]`` with ``batch_first=True``, ``[T, F]``
unbatched, or a ``PackedSequence`` of sequences of different lengths, and states ``[L, B, H]``
(``[L, H]`` unbatched). Inside gradlab everything is time-major, batched and padded, ``[T, B, F]``
(zeros past each sample's length) and ``[L, B, H]``; a :class:`SequenceLayout` converts in and out.
A packed batch keeps its structure, so what goes back out is packed exactly as it came in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence


@dataclass(frozen=True, eq=False)
class Packing:
    """The structure of a PackedSequence (torch's fields) and each sample's length [B], batch order."""

    batch_sizes: torch.Tensor
    sorted_indices: Optional[torch.Tensor]
    unsorted_indices: Optional[torch.Tensor]
    lengths: torch.Tensor

    def pack(self, padded: torch.Tensor) -> PackedSequence:
        """[T, B, F] → a PackedSequence of the same structure: at step t, the first batch_sizes[t]
        samples in sorted order."""
        order = self.sorted_indices if self.sorted_indices is not None else torch.arange(padded.shape[1])
        order = order.to(padded.device)
        data = torch.cat([padded[t, order[:n]] for t, n in enumerate(self.batch_sizes.tolist())])
        return PackedSequence(data, self.batch_sizes, self.sorted_indices, self.unsorted_indices)


def within_length_reversal(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """[T, B] positions: step s of a reverse sweep reads position len_b − 1 − s (s < len_b), and the
    padding after it in place. Its own inverse."""
    s = torch.arange(T, device=lengths.device).unsqueeze(1)
    return torch.where(s < lengths, lengths - 1 - s, s)


def along_time(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """x [T, B, …] with row s of sample b taken from position positions[s, b]."""
    index = positions.reshape(positions.shape + (1,) * (x.dim() - 2)).expand_as(x)
    return x.gather(0, index)


@dataclass(frozen=True)
class SequenceLayout:
    batch_first: bool
    batched: bool
    packing: Optional[Packing] = None

    @classmethod
    def of(cls, x, batch_first: bool, owner: str = "the model") -> "SequenceLayout":
        """The layout of ``x`` as a module with this ``batch_first`` reads it."""
        if isinstance(x, PackedSequence):
            _, lengths = pad_packed_sequence(x)
            return cls(False, True, Packing(x.batch_sizes, x.sorted_indices, x.unsorted_indices,
                                            lengths.to(x.data.device)))
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{owner}: expected a tensor or a PackedSequence, got {type(x).__name__}")
        if x.dim() not in (2, 3):
            raise ValueError(f"{owner}: expected a 2-D (unbatched) or 3-D input, got {x.dim()}-D of shape {list(x.shape)}")
        return cls(bool(batch_first), x.dim() == 3)

    @property
    def lengths(self) -> Optional[torch.Tensor]:
        """[B] each sample's length when the batch is packed, else None (all T)."""
        return None if self.packing is None else self.packing.lengths

    def width(self, x) -> int:
        """The number of features per step of ``x``."""
        return (x.data if isinstance(x, PackedSequence) else x).shape[-1]

    def time_major(self, x) -> torch.Tensor:
        """x in this layout → [T, B, F] (padded with zeros past each sample's length)."""
        if self.packing is not None:
            if not isinstance(x, PackedSequence):
                raise TypeError(f"expected a PackedSequence like the input, got {type(x).__name__}")
            return pad_packed_sequence(x)[0]
        if not self.batched:
            return x.unsqueeze(1)
        return x.transpose(0, 1) if self.batch_first else x

    def restore(self, x: torch.Tensor):
        """[T, B, F] → this layout (the inverse of :meth:`time_major`)."""
        if self.packing is not None:
            return self.packing.pack(x)
        if not self.batched:
            return x.squeeze(1)
        return x.transpose(0, 1) if self.batch_first else x

    def state_in(self, state: torch.Tensor) -> torch.Tensor:
        """A state as the module takes it ([L, B, H], or [L, H] unbatched) → [L, B, H]."""
        return state if self.batched else state.unsqueeze(1)

    def state_out(self, state: torch.Tensor) -> torch.Tensor:
        """[L, B, H] → the state as the module returns it."""
        return state if self.batched else state.squeeze(1)
