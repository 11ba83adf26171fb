"""A recorded step under ``torch.autocast``.

Under autocast torch runs a recurrent module in float16/bfloat16 (on the CPU: nn.LSTM and nn.RNN
in bfloat16; nn.GRU stays float32). The fused forward and backward run as they would without
gradlab (the step's parameter gradients are the unwatched ones); the recorded per-step gradients
come from the engine's recomputation with autocast off, in the dtype of the module's parameters
(float32), seeded with the low-precision gradients that reached the outputs — so they are exact
for the float32 recurrence and differ from the bfloat16 one by bfloat16's rounding
(tests/watch/test_autocast.py states the tolerance it checks).
"""

from __future__ import annotations

import torch
from torch.nn.utils.rnn import PackedSequence


def autocast_on(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` ("cpu", "cuda"); torch < 2.4 asks per device."""
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()


def fused_dtype(fused) -> str:
    """The dtype of the fused forward's output, by name."""
    out = fused[0].data if isinstance(fused[0], PackedSequence) else fused[0]
    return str(out.dtype).replace("torch.", "")
