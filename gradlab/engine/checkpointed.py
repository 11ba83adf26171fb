"""Per-step gradient norms of sequences too long to store: checkpointed, log-domain BPTT.

A first forward pass keeps only the state at the start of every segment of S ≈ √T steps. The
backward pass then walks the segments from last to first: it recomputes one segment's tape from
its checkpoint, runs the log-domain backward sweep over it with the adjoint carried in from the
segment after (docs/derivations.md, "Splitting the sequence"), writes that segment's norms and
forgets the tape. Memory: the T/S checkpoints, one segment's tape and the [T, B] norms; the input
and the explicit gradient are asked for one segment at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from gradlab.engine.logscale import LOG_ZERO, split_log
from gradlab.engine.bptt import backward_layers, forward_tapes
from gradlab.models.recurrent import RecurrentModel
from gradlab.engine.numerics import stable_norm

#: inputs(t0, t1) → x for steps t0..t1−1, time-major [t1 − t0, B, I]
InputFn = Callable[[int, int], torch.Tensor]
#: explicit(t0, t1, output) → ∂L/∂output for those steps, [t1 − t0, B, H], given the top layer's h_t
ExplicitFn = Callable[[int, int, torch.Tensor], torch.Tensor]


@dataclass
class StreamedNorms:
    """Per layer, [T, B] float64 arrays, time in forward order.

    log10[name][k]: log10 of the per-sample norm of the total ∂L/∂name_t (exact; −inf only for
        exact zeros); plain[name][k]: the norm of the same gradient as a tensor of the run's dtype
        holds it (0.0 where it underflows, inf where it overflows); explicit_log10[k]: log10 ‖∂⁺L/∂h_t‖.
    """

    log10: dict[str, list[np.ndarray]]
    plain: dict[str, list[np.ndarray]]
    explicit_log10: list[np.ndarray]
    forward_overflow_step: Optional[int] = None  # the first step whose state is not finite, if any


def segment_length(T: int) -> int:
    return max(1, math.isqrt(T - 1) + 1) if T > 1 else 1


def checkpointed_norms(model: RecurrentModel, inputs: InputFn, explicit: ExplicitFn, T: int, batch: int,
                       segment: Optional[int] = None, progress: bool = True,
                       on_forward: Optional[Callable[[int, int, list], None]] = None) -> StreamedNorms:
    """Gradient norms at every step and layer of ``model`` run from a zero state over T steps.

    on_forward(t0, t1, tapes), if given, sees every segment's tapes in the first forward pass.
    If the forward pass itself overflows (a state becomes inf or NaN), no gradient is defined: the
    result then holds only ``forward_overflow_step`` (and zero arrays).
    """
    S = segment or segment_length(T)
    starts = list(range(0, T, S))
    L, H = model.num_layers, model.hidden_size
    names = model.state_names
    p = next(model.parameters())
    arrays = lambda: [np.zeros((T, batch)) for _ in range(L)]  # noqa: E731
    log10 = {n: arrays() for n in names}
    plain = {n: arrays() for n in names}
    explicit_log10 = arrays()
    bar = tqdm(total=2 * T, unit="step", desc="forward, then backward", disable=not progress, leave=False)
    with torch.no_grad():
        state = tuple(torch.zeros(L, batch, H, dtype=p.dtype, device=p.device) for _ in names)
        checkpoints = []
        for t0 in starts:  # pass 1: forward, keeping the state at each segment start
            t1 = min(t0 + S, T)
            checkpoints.append(state)
            _, tapes = forward_tapes(model, inputs(t0, t1), state)
            state = tuple(torch.stack([tape.final[i] for tape in tapes]) for i in range(len(names)))
            if on_forward is not None:
                on_forward(t0, t1, tapes)
            bar.update(t1 - t0)
            if not all(torch.isfinite(tape.h).all() for tape in tapes):
                bad = torch.stack([~torch.isfinite(tape.h[1:]).flatten(1).all(1) for tape in tapes]).any(0)
                bar.close()
                return StreamedNorms(log10, plain, explicit_log10, forward_overflow_step=t0 + int(bad.nonzero()[0]))
        zeros = torch.zeros(batch, H, dtype=p.dtype, device=p.device)
        zero_log = torch.full((batch,), LOG_ZERO, dtype=torch.float64, device=p.device)
        ends = [(tuple(zeros for _ in names), zero_log) for _ in range(L)]
        for t0, init in zip(reversed(starts), reversed(checkpoints)):  # pass 2: backward
            t1 = min(t0 + S, T)
            layer_inputs, tapes = forward_tapes(model, inputs(t0, t1), init)
            grad_out = explicit(t0, t1, tapes[-1].h[1:])
            layers, _ = backward_layers(model, layer_inputs, tapes, split_log(grad_out), ends, log_domain=True)
            for k, lay in enumerate(layers):
                for n, lg, g in (("h", lay.log10_dh, lay.dh), ("c", lay.log10_dc, lay.dc)):
                    if n in names:
                        log10[n][k][t0:t1] = lg.cpu().numpy()
                        plain[n][k][t0:t1] = stable_norm(g).cpu().numpy()
                explicit_log10[k][t0:t1] = lay.log10_explicit.cpu().numpy()
            ends = [lay.carry for lay in layers]
            bar.update(t1 - t0)
    bar.close()
    return StreamedNorms(log10, plain, explicit_log10)
