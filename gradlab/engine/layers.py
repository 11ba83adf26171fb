"""The layers' backward sweeps, top down: each layer's and direction's sweep (the architecture's
``backward_sweep``, in the plain or the log domain) from the explicit gradient on its output, the
gradient it passes to the layer below, and what the driver keeps of it (:class:`LayerSweep`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from gradlab.engine.forward import sweep_order
from gradlab.engine.logscale import (LOG_ZERO, LogScale, PlainScale, add_logs, log10_from, log10_norm, split_log,
                                     to_plain)
from gradlab.engine.numerics import nonzero_steps, stable_norm
from gradlab.engine.params import ParameterSums
from gradlab.models.architectures import RowNorms, first_steps
from gradlab.models.recurrent import RecurrentModel

#: What the driver keeps of one state's or the explicit gradient's rows: (plain values [T, B, W], or
#: None when not kept; their norms [T, B] float64; the log10 norms [T, B] float64).
Rows = tuple[Optional[torch.Tensor], torch.Tensor, torch.Tensor]


def split_log_state(parts: tuple[torch.Tensor, ...]) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """A state gradient (∂L/∂h[, ∂L/∂c]), each [..., H_s], as unit-size parts and one log scale [...]."""
    hat, log = split_log(torch.cat(parts, dim=-1))
    return hat.split([p.shape[-1] for p in parts], dim=-1), log


def split_through(logged: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor):
    """A log-domain gradient (x̂ [T, B, F], log [T, B]) times ``mask`` [T, B, F], back in that form."""
    hat, log = split_log(logged[0] * mask)
    return hat, torch.where(log <= LOG_ZERO / 2, log, log + logged[1])


def carries_gradient(final, log_domain: bool) -> bool:
    """Whether a direction's final-state gradient (plain parts, or (parts, log [B])) is nonzero anywhere."""
    if log_domain:
        return bool((final[1] > LOG_ZERO / 2).any())
    return any(bool(part.ne(0).any()) for part in final)


def last_active(active: torch.Tensor) -> int:
    """The last step (in swept order) of ``active`` [T] bool that is True; 0 when none is."""
    steps = active.nonzero()
    return int(steps[-1]) if steps.numel() else 0


class Padding:
    """What a sweep of the first n of T steps returns, padded to T steps with the later steps' exact
    values: gradients 0, norms 0, log10 norms −inf, log scales LOG_ZERO. ``pad(v, fill)``: v [n, …] →
    [T, …] (None stays None); ``pad.rows``: a :data:`Rows` triple."""

    def __init__(self, T: int, n: int) -> None:
        self.T, self.n = T, n

    def __call__(self, v: Optional[torch.Tensor], fill: float) -> Optional[torch.Tensor]:
        if v is None or self.n == self.T:
            return v
        return torch.cat((v, v.new_full((self.T - self.n,) + tuple(v.shape[1:]), fill)))

    def rows(self, rows: "Rows") -> "Rows":
        values, norm, log10 = rows
        return self(values, 0.0), self(norm, 0.0), self(log10, -math.inf)


@dataclass
class LayerSweep:
    """One layer's backward sweep as the driver keeps it, time-major, plain values.

    dh, dc: [T, B, H] (dc None without a cell state; both None where the sweep was asked not to keep
    them); norm_dh, norm_dc: their norms [T, B] float64 (of the plain values); log10_dh, log10_dc:
    [T, B] float64 (exact in the log domain); explicit: [T, B, H] ∂⁺L/∂h_t of this layer (None where not
    kept); norm_explicit, log10_explicit: [T, B] float64;
    params: this layer's parameter gradients by torch's names;
    grad_initial: the gradient on the layer's initial state — a tuple of [B, H], or in the log
    domain (unit-size parts, log scale [B]); down: what this direction passes to the layer below
    (∂L/∂ the layer's input through it, input order, plain or (x̂, log)), kept only where asked.
    """

    dh: Optional[torch.Tensor]
    dc: Optional[torch.Tensor]
    norm_dh: torch.Tensor
    norm_dc: Optional[torch.Tensor]
    log10_dh: torch.Tensor
    log10_dc: Optional[torch.Tensor]
    explicit: Optional[torch.Tensor]
    norm_explicit: torch.Tensor
    log10_explicit: torch.Tensor
    params: dict[str, torch.Tensor]
    grad_initial: tuple
    down: Optional[object] = None


def backward_layers(model: RecurrentModel, inputs: list, tapes: list, explicit, grad_finals: list,
                    log_domain: bool, finals_from_loss: bool = True, lengths: Optional[torch.Tensor] = None,
                    dropout_masks: Optional[list] = None, with_params: bool = True, keep_grads: bool = True,
                    reuse: Optional[dict[int, LayerSweep]] = None, keep_downs: bool = False):
    """The layers' backward sweeps, top down, each direction on its own.

    explicit: ∂⁺L/∂(top layer's output), [T, B, D·H] plain, or (x̂ [T, B, D·H], log [T, B]) in the
    log domain. grad_finals[k·D + d]: the gradient on that direction's final state: a plain tuple
    of [B, H], or ((ĥ[, ĉ]), log [B]). finals_from_loss: they are ∂L/∂h_n (then part of the reported
    explicit gradient at the direction's last step, each sample's own with ``lengths``), not a carry
    from a later segment. dropout_masks: as in :func:`forward_tapes`; the gradient reaching layer
    k's output from above is multiplied by the same mask. with_params: also the parameter gradients
    and ∂L/∂x (without, ``LayerSweep.params`` is empty and ∂L/∂x is None: record and the
    checkpointed engine need neither). keep_grads: keep the per-step gradients in plain values
    (without, ``LayerSweep``'s tensors are None and only their norms are formed). reuse: sweeps already
    run with the same tape, explicit gradient and final-state gradient (a sweep of the top layer by
    index k·D + d, from an earlier call with ``keep_downs``, which keeps each top-layer sweep's ``down``):
    taken as they are instead of sweeping again.
    Returns (LayerSweep per layer and direction at index k·D + d, all in input order; ∂L/∂x in the
    same form as ``explicit``).
    """
    arch, D, H = model.architecture, model.num_directions, model.output_size
    T, B = tapes[0].h.shape[0] - 1, tapes[0].h.shape[1]
    batch = torch.arange(B, device=tapes[0].h.device)
    last = (lengths - 1).clamp_min(0) if lengths is not None else torch.full_like(batch, T - 1)  # swept order
    sweeps: list[Optional[LayerSweep]] = [None] * (model.num_layers * D)
    for k in reversed(range(model.num_layers)):
        below = None  # ∂L/∂(input of layer k), summed over directions
        for d in range(D):
            if reuse and k * D + d in reuse:  # the same sweep as one already run
                sweeps[k * D + d] = done = reuse[k * D + d]
                if k > 0:
                    below = done.down if below is None else add_logs(*below, *done.down) if log_domain \
                        else below + done.down
                continue
            w_ih, w_hh, b_ih, _ = model.layer_parameters(k, d)
            extra = model.extra_weights(k, d)
            tape, part = tapes[k * D + d], slice(d * H, (d + 1) * H)
            flip = sweep_order(d, lengths, T)
            final = grad_finals[k * D + d]
            finals = (last, final) if finals_from_loss else None
            if log_domain:
                e, log = flip(explicit[0][..., part]), flip(explicit[1])
                active = (log > LOG_ZERO / 2).any(dim=1)
            else:
                e, log = flip(explicit[..., part]), None
                active = nonzero_steps(e)
            shown = explicit_rows(e, log, finals, keep_grads, active)
            # nothing enters past the last active step: the sweep starts there, the later steps are 0
            n = T if carries_gradient(final, log_domain) else last_active(active) + 1
            pad = Padding(T, n)
            sub_tape = tape if n == T else first_steps(tape, n)
            e, log = e[:n], None if log is None else log[:n]
            # a nonzero final gradient is merged as the sweep reaches each sample's own last step
            merged = finals_from_loss and lengths is not None and n == T
            if log_domain:
                final_hat, final_log = final
                if merged:
                    scale = LogScale(e.contiguous(), log, torch.full_like(final_log, LOG_ZERO),
                                     final=(last, final_hat, final_log))
                    start = tuple(torch.zeros_like(c) for c in final_hat)
                else:  # every sample's last step is T − 1 (or its final gradient is 0): the carry entering it
                    scale, start = LogScale(e.contiguous(), log, final_log), tuple(c.clone() for c in final_hat)
            elif merged:
                scale = PlainScale(e.contiguous(), final=(last, final))
                start = tuple(torch.zeros_like(c) for c in final)
            else:
                scale, start = PlainScale(e.contiguous()), tuple(c.clone() for c in final)
            norms = RowNorms.for_sweep(len(model.state_names), scale.explicit, keep_grads and log_domain and not extra)
            wants_dx = with_params or k > 0
            steps = scale.steps if log_domain else None
            sums = ParameterSums(arch, sub_tape, flip(inputs[k])[:n], k, d, b_ih is not None, bool(extra),
                                 steps) if with_params else None
            g = arch.backward_sweep(sub_tape, scale, start, w_hh, **extra, norms=norms,
                                    take_projections=None if sums is None else sums.take,
                                    weight_ih=w_ih if wants_dx else None)
            dh_rows = pad.rows(state_rows(norms, 0, g.dh, steps, keep_grads))
            dc_rows = None if g.dc is None else pad.rows(state_rows(norms, 1, g.dc, steps, keep_grads))
            grad_initial = (g.grad_initial, scale.log) if log_domain else g.grad_initial
            down = None
            if wants_dx:  # ∂L/∂(input of layer k) through this direction
                down = pad(g.input_grad, 0.0)
                down = (flip(down), flip(pad(steps, LOG_ZERO))) if log_domain else flip(down)
                below = down if below is None else add_logs(*below, *down) if log_domain else below + down
            params = {} if sums is None else sums.result(g.dh)
            fl = lambda v: None if v is None else flip(v)  # noqa: E731
            dc_rows = dc_rows or (None, None, None)
            sweeps[k * D + d] = LayerSweep(fl(dh_rows[0]), fl(dc_rows[0]), flip(dh_rows[1]), fl(dc_rows[1]),
                                           flip(dh_rows[2]), fl(dc_rows[2]), fl(shown[0]), flip(shown[1]),
                                           flip(shown[2]), params, grad_initial,
                                           down if keep_downs and k == model.num_layers - 1 else None)
        if dropout_masks is not None and k > 0:  # through the mask on layer k−1's output
            below = split_through(below, dropout_masks[k - 1]) if log_domain else below * dropout_masks[k - 1]
        explicit = below  # the explicit part for layer k−1
    return sweeps, explicit


def state_rows(norms: RowNorms, s: int, rows: torch.Tensor, log: Optional[torch.Tensor], keep: bool) -> Rows:
    """State s's rows [T, B, W] as a sweep stored them, as the driver keeps them: from what the compiled
    steps measured of them (``norms``) and, for the steps that ran eagerly, from ``to_plain`` and
    ``stable_norm``, the reference of the compiled measurement. log: the rows' log scale [T, B] (log
    domain: the rows are unit-size), or None (plain rows)."""
    own, plain_norm = norms.norms[s, 0], norms.norms[s, 1]
    rest = (~norms.measured).nonzero().squeeze(1).to(rows.device)
    every = rest.numel() == rows.shape[0]
    pick = (lambda v: v) if every else (lambda v: v[rest])  # noqa: E731  the steps that ran eagerly

    def put(into: torch.Tensor, value: torch.Tensor) -> None:
        if every:
            into.copy_(value)
        elif rest.numel():
            into[rest] = value

    if log is None:  # plain rows are their own plain values
        put(plain_norm, stable_norm(pick(rows)))
        return (rows if keep else None), plain_norm, plain_norm.log10()
    values = None
    if keep and norms.values is not None:
        values = norms.values[s]
        put(values, to_plain(pick(rows), pick(log)))
    elif keep:
        values = to_plain(rows, log)
    if rest.numel():
        put(own, stable_norm(pick(rows)))
        put(plain_norm, stable_norm(pick(values) if values is not None else to_plain(pick(rows), pick(log))))
    return values, plain_norm, log10_from(own, log)


def explicit_rows(e: torch.Tensor, log: Optional[torch.Tensor], finals: Optional[tuple], keep: bool,
                  active: torch.Tensor) -> Rows:
    """The explicit gradient ∂⁺L/∂h_t of one direction as the driver reports it, from e [T, B, H] (plain,
    or unit-size rows with ``log`` [T, B]), with ∂L/∂h_n joined at each sample's last step where
    ``finals`` = (last [B], the final state's gradient as the sweep takes it) is given. Formed on the steps
    where some sample has one (``active`` [T] bool, the steps where e is not 0; a loss on the last step:
    one step); everywhere else it is exactly 0 (norm 0, log10 norm −inf)."""
    T, B = e.shape[:2]
    if finals is not None:
        active = active.clone()
        active[finals[0]] = True
    steps = active.nonzero().squeeze(1)
    sub = e[steps]
    sub_log = None if log is None else log[steps]
    if finals is not None:
        batch, at = torch.arange(B, device=e.device), torch.searchsorted(steps, finals[0])
        if log is None:
            sub[at, batch] += finals[1][0]
        else:
            (final_hat, *_), final_log = finals[1]
            sub[at, batch], sub_log[at, batch] = add_logs(sub[at, batch], sub_log[at, batch], final_hat, final_log)
    plain = sub if log is None else to_plain(sub, sub_log)
    norm = e.new_zeros((T, B), dtype=torch.float64)
    norm[steps] = stable_norm(plain)
    log10 = torch.full_like(norm, -math.inf)
    log10[steps] = norm[steps].log10() if log is None else log10_norm(sub, sub_log)
    values = None
    if keep:
        values = e.new_zeros(e.shape)
        values[steps] = plain
    return values, norm, log10
