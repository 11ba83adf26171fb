"""A recorded step under ``torch.autocast``.

Under autocast torch runs a recurrent module in float16/bfloat16 (on the CPU: nn.LSTM and nn.RNN
in bfloat16; nn.GRU stays float32). Hand-derived and autograd per-step gradients of a bfloat16
recurrence would carry bfloat16's 3 significant digits, and the log-domain sweep has no low-precision
form; so a recorded step runs gradlab's copy with autocast off, in the dtype of the module's
parameters (float32), on the same input, and hands the user's loss outputs cast to the dtype the
fused forward returned. The recorded gradients are then exact for the float32 recurrence; they and
the step's parameter gradients differ from an unwatched low-precision step's by the low precision's
rounding (tests/watch/test_frameworks.py states the tolerance it checks).
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


def in_dtype(value, dtype: torch.dtype):
    """A tensor, PackedSequence, tuple of tensors or None, in ``dtype`` (floating tensors only)."""
    if value is None:
        return None
    if isinstance(value, PackedSequence):
        return value._replace(data=in_dtype(value.data, dtype))
    if isinstance(value, tuple):
        return tuple(in_dtype(v, dtype) for v in value)
    return value.to(dtype) if value.is_floating_point() else value


def like_fused(output, fused):
    """(output, final state) of the record, each tensor in the dtype of the fused forward's."""
    (out, final), (fused_out, fused_final) = output, fused
    ref = fused_out.data if isinstance(fused_out, PackedSequence) else fused_out
    if isinstance(final, tuple):
        final = tuple(in_dtype(f, g.dtype) for f, g in zip(final, fused_final))
    else:
        final = in_dtype(final, fused_final.dtype)
    return in_dtype(out, ref.dtype), final


def fused_dtype(fused) -> str:
    """The dtype of the fused forward's output, by name."""
    out = fused[0].data if isinstance(fused[0], PackedSequence) else fused[0]
    return str(out.dtype).replace("torch.", "")
