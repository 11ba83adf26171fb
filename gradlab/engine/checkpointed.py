"""Per-step gradient norms of sequences too long to store: checkpointed, log-domain BPTT.

A first forward pass keeps only the state at the start of every segment of S ≈ √T steps (at least
MIN_SEGMENT), and the last segment's tape. The backward pass then walks the segments from last to
first: it recomputes each earlier segment's tape from its checkpoint, runs the log-domain backward
sweep over it with the gradient carried in from the segment after (docs/derivations.md, "Splitting
the sequence"), writes that segment's norms and forgets the tape. Memory: the T/S checkpoints, one
segment's tape and the [T, B] norms; the input and the explicit gradient are asked for one segment
at a time.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from gradlab.engine.forward import check_dropout, forward_tapes
from gradlab.engine.layers import backward_layers
from gradlab.engine.logscale import LOG_ZERO, split_log
from gradlab.engine.trace import Trace
from gradlab.models.recurrent import RecurrentModel

#: inputs(t0, t1) → x for steps t0..t1−1, time-major [t1 − t0, B, I]
InputFn = Callable[[int, int], torch.Tensor]
#: explicit(t0, t1, output) → ∂L/∂output for those steps, [t1 − t0, B, H], given the top layer's h_t
ExplicitFn = Callable[[int, int, torch.Tensor], torch.Tensor]
#: on_forward(t0, t1, tapes) sees every segment's tapes (bottom layer first) in the first forward pass
ForwardFn = Callable[[int, int, list], None]


#: The shortest segment (unless the sequence is shorter): each costs a fixed ~1.3 ms of calls beyond
#: its steps (LSTM B 32 H 128, Intel Xeon), 10 segments of 10 steps took 52 ms where one of 100 took 40.
MIN_SEGMENT = 100


def segment_length(T: int) -> int:
    """S = ⌈√T⌉ steps per segment, at least MIN_SEGMENT (all T steps when fewer)."""
    return min(T, max(MIN_SEGMENT, math.isqrt(T - 1) + 1)) if T > 1 else 1


def checkpointed_norms(model: RecurrentModel, inputs: InputFn, explicit: ExplicitFn, T: int, batch: int,
                       segment: Optional[int] = None, progress: bool = True,
                       on_forward: Optional[ForwardFn] = None) -> Trace:
    """The :class:`Trace` (norms only: plain and log10, total and explicit) of ``model`` run from a
    zero state over T steps, with the input and ∂L/∂output asked for one segment at a time.

    If the forward pass itself overflows (a state becomes inf or NaN), no gradient is defined: the
    trace then has ``forward_overflow_step`` set and zero norms.
    """
    if model.num_directions != 1:
        raise ValueError("checkpointed_norms sweeps forward in time in segments; a bidirectional model's reverse "
                         "direction needs the whole sequence (use gradlab.bptt or gradlab.record)")
    check_dropout(model, None, "checkpointed_norms", takes_masks=False)
    if model.proj_size:
        raise ValueError("checkpointed_norms does not support a projected LSTM (proj_size); use gradlab.bptt or "
                         "gradlab.record")
    S = segment or segment_length(T)
    starts = list(range(0, T, S))
    L, H = model.num_layers, model.hidden_size
    names = model.state_names
    p = next(model.parameters())
    arrays = lambda: np.zeros((L, 1, T, batch))  # noqa: E731
    log10 = {n: arrays() for n in names}
    plain = {n: arrays() for n in names}
    explicit_plain, explicit_log10 = arrays(), arrays()
    meta = {"engine": "gradlab.checkpointed_norms: hand-derived BPTT in the log domain, checkpointed every "
                      f"{S} steps", "segment": S, "dtype": str(p.dtype).replace("torch.", ""), "device": str(p.device)}
    trace = lambda **extra: Trace(kind=model.kind, hidden_size=H, norms=plain, explicit_norms=explicit_plain,  # noqa: E731
                                  log10_norms=log10, explicit_log10_norms=explicit_log10, meta=meta, **extra)
    bar = tqdm(total=2 * T, unit="step", desc="forward, then backward", disable=not progress, leave=False)
    with torch.no_grad():
        state = tuple(torch.zeros(L, batch, H, dtype=p.dtype, device=p.device) for _ in names)
        checkpoints = []
        for t0 in starts:  # pass 1: forward, keeping the state at each segment start (and the last segment's tapes)
            t1 = min(t0 + S, T)
            checkpoints.append(state)
            last = forward_tapes(model, inputs(t0, t1), state)  # (layer inputs, tapes)
            tapes = last[1]
            state = tuple(torch.stack([tape.final[i] for tape in tapes]) for i in range(len(names)))
            if on_forward is not None:
                on_forward(t0, t1, tapes)
            bar.update(t1 - t0)
            if not all(torch.isfinite(tape.h).all() for tape in tapes):
                bad = torch.stack([~torch.isfinite(tape.h[1:]).flatten(1).all(1) for tape in tapes]).any(0)
                bar.close()
                return trace(forward_overflow_step=t0 + int(bad.nonzero()[0]))
        zeros = torch.zeros(batch, H, dtype=p.dtype, device=p.device)
        zero_log = torch.full((batch,), LOG_ZERO, dtype=torch.float64, device=p.device)
        grad_finals = [(tuple(zeros for _ in names), zero_log) for _ in range(L)]
        for t0, init in zip(reversed(starts), reversed(checkpoints)):  # pass 2: backward
            t1 = min(t0 + S, T)
            layer_inputs, tapes = last if t0 == starts[-1] else forward_tapes(model, inputs(t0, t1), init)
            last = None  # its tapes are freed with the segment's
            grad_out = explicit(t0, t1, tapes[-1].h[1:])
            layers, _ = backward_layers(model, layer_inputs, tapes, split_log(grad_out), grad_finals, log_domain=True,
                                        finals_from_loss=False,  # finals: the carry from the later segments
                                        with_params=False, keep_grads=False)
            for k, lay in enumerate(layers):
                for n, lg, norm in (("h", lay.log10_dh, lay.norm_dh), ("c", lay.log10_dc, lay.norm_dc)):
                    if n in names:
                        log10[n][k, 0, t0:t1] = lg.cpu().numpy()
                        plain[n][k, 0, t0:t1] = norm.cpu().numpy()
                explicit_log10[k, 0, t0:t1] = lay.log10_explicit.cpu().numpy()
                explicit_plain[k, 0, t0:t1] = lay.norm_explicit.cpu().numpy()
            grad_finals = [lay.grad_initial for lay in layers]
            bar.update(t1 - t0)
    bar.close()
    return trace()
