"""Dropout between layers, drawn exactly as torch's recurrent modules draw it.

``nn.RNN/LSTM/GRU(dropout=p)`` in training mode multiply every layer's output but the last by a
mask m/(1−p), m ~ Bernoulli(1−p), before the next layer reads it. On the CPU torch draws that mask
with ``at::dropout`` on the layer's output as it holds it: time-major ``[T, B, D·H]``, or, for a
packed batch, the packed data ``[N, D·H]``. Calling ``torch.nn.functional.dropout`` on a tensor of
the same shape, in the same order, from the same generator state draws the same mask — which is
how ``gradlab.watch`` replays the mask of a forward that has already run (it checks the result).
On CUDA, cuDNN draws its own mask inside the fused kernel; nothing outside can reproduce it.

The multiplier passes a hook point, so whoever records the forward sees the mask it used.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from gradlab.models.layout import Packing


def dropout_multiplier(seq: torch.Tensor, p: float, packing: Optional[Packing]) -> torch.Tensor:
    """The mask m/(1−p) for a layer output ``seq`` [T, B, F] (time-major, padded), drawn as torch's
    CPU kernels draw it (from the packed data when ``packing`` is given). Returns [T, B, F]; 0 past
    each sample's length."""
    if packing is None:
        return F.dropout(torch.ones_like(seq, memory_format=torch.contiguous_format), p, training=True)
    data = packing.pack(seq.detach()).data
    noise = F.dropout(torch.ones_like(data), p, training=True)
    packed = PackedSequence(noise, packing.batch_sizes, packing.sorted_indices, packing.unsorted_indices)
    return pad_packed_sequence(packed, total_length=seq.shape[0])[0]


def between_layers(seq: torch.Tensor, p: float, training: bool, packing: Optional[Packing],
                   hook: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """A layer's output [T, B, F] as the next layer reads it: times the dropout mask in training
    mode with p > 0 (the mask passes ``hook`` first, which may replace it), else unchanged."""
    if not training or p == 0:
        return seq
    return seq * hook(dropout_multiplier(seq, p, packing))
