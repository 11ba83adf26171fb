"""The layers' backward sweeps, top down: each layer's and direction's sweep (the architecture's
``backward_sweep``, in the plain or the log domain) from the explicit gradient on its output, the
gradient it passes to the layer below, and what the driver keeps of it (:class:`LayerSweep`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from gradlab.engine.forward import sweep_order
from gradlab.engine.logscale import LOG_ZERO, LogScale, PlainScale, add_logs, log10_norm, split_log, to_plain
from gradlab.engine.numerics import stable_norm
from gradlab.engine.params import log_domain_parameter_grads, parameter_grads
from gradlab.models.recurrent import RecurrentModel


def split_log_state(parts: tuple[torch.Tensor, ...]) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """A state gradient (∂L/∂h[, ∂L/∂c]), each [..., H_s], as unit-size parts and one log scale [...]."""
    hat, log = split_log(torch.cat(parts, dim=-1))
    return hat.split([p.shape[-1] for p in parts], dim=-1), log


def split_through(logged: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor):
    """A log-domain gradient (x̂ [T, B, F], log [T, B]) times ``mask`` [T, B, F], back in that form."""
    hat, log = split_log(logged[0] * mask)
    return hat, torch.where(log <= LOG_ZERO / 2, log, log + logged[1])


@dataclass
class LayerSweep:
    """One layer's backward sweep as the driver keeps it, time-major, plain values.

    dh, dc: [T, B, H] (dc None without a cell state); norm_dh, norm_dc: their norms [T, B] float64
    (of the plain values); log10_dh, log10_dc: [T, B] float64 (exact in the log domain);
    explicit: [T, B, H] ∂⁺L/∂h_t of this layer; norm_explicit, log10_explicit: [T, B] float64;
    params: this layer's parameter gradients by torch's names;
    grad_initial: the gradient on the layer's initial state — a tuple of [B, H], or in the log
    domain (unit-size parts, log scale [B]).
    """

    dh: torch.Tensor
    dc: Optional[torch.Tensor]
    norm_dh: torch.Tensor
    norm_dc: Optional[torch.Tensor]
    log10_dh: torch.Tensor
    log10_dc: Optional[torch.Tensor]
    explicit: torch.Tensor
    norm_explicit: torch.Tensor
    log10_explicit: torch.Tensor
    params: dict[str, torch.Tensor]
    grad_initial: tuple


def backward_layers(model: RecurrentModel, inputs: list, tapes: list, explicit, grad_finals: list,
                    log_domain: bool, finals_from_loss: bool = True, lengths: Optional[torch.Tensor] = None,
                    dropout_masks: Optional[list] = None, with_params: bool = True):
    """The layers' backward sweeps, top down, each direction on its own.

    explicit: ∂⁺L/∂(top layer's output), [T, B, D·H] plain, or (x̂ [T, B, D·H], log [T, B]) in the
    log domain. grad_finals[k·D + d]: the gradient on that direction's final state: a plain tuple
    of [B, H], or ((ĥ[, ĉ]), log [B]). finals_from_loss: they are ∂L/∂h_n (then part of the reported
    explicit gradient at the direction's last step, each sample's own with ``lengths``), not a carry
    from a later segment. dropout_masks: as in :func:`forward_tapes`; the gradient reaching layer
    k's output from above is multiplied by the same mask. with_params: also the parameter gradients
    and ∂L/∂x (without, ``LayerSweep.params`` is empty and ∂L/∂x is None: record and the
    checkpointed engine need neither).
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
            w_ih, w_hh, b_ih, _ = model.layer_parameters(k, d)
            extra = model.extra_weights(k, d)
            tape, part = tapes[k * D + d], slice(d * H, (d + 1) * H)
            flip = sweep_order(d, lengths, T)
            if log_domain:
                hat, log = flip(explicit[0][..., part]), flip(explicit[1])
                final_hat, final_log = grad_finals[k * D + d]
                shown_hat, shown_log = hat, log
                if finals_from_loss:  # ∂L/∂h_n joins the explicit gradient at each sample's last step
                    last_hat, last_log = add_logs(hat[last, batch], log[last, batch], final_hat[0], final_log)
                    shown_hat, shown_log = hat.index_put((last, batch), last_hat), log.index_put((last, batch), last_log)
                if finals_from_loss and lengths is not None:  # merged as the sweep reaches each sample's last step
                    scale = LogScale(hat.contiguous(), log, torch.full_like(final_log, LOG_ZERO),
                                     final=(last, final_hat, final_log))
                    start = tuple(torch.zeros_like(c) for c in final_hat)
                else:  # every sample's last step is T − 1: the final state's gradient is the carry entering it
                    scale, start = LogScale(hat.contiguous(), log, final_log), tuple(c.clone() for c in final_hat)
                plain_explicit, log10_explicit = to_plain(shown_hat, shown_log), log10_norm(shown_hat, shown_log)
                g = arch.backward_sweep(tape, scale, start, w_hh, **extra, keep_projections=with_params or k > 0)
                steps = scale.steps
                dh, dc = to_plain(g.dh, steps), None if g.dc is None else to_plain(g.dc, steps)
                log10_dh = log10_norm(g.dh, steps)
                log10_dc = None if g.dc is None else log10_norm(g.dc, steps)
                grad_initial = (g.grad_initial, scale.log)
                if with_params or k > 0:
                    down = (flip(g.dx_proj @ w_ih), flip(steps))
                    below = down if below is None else add_logs(*below, *down)
            else:
                e = flip(explicit[..., part])
                final = grad_finals[k * D + d]
                plain_explicit = e
                if finals_from_loss:  # ∂L/∂h_n joins the explicit gradient at each sample's last step
                    plain_explicit = e.index_put((last, batch), e[last, batch] + final[0])
                if finals_from_loss and lengths is not None:  # merged as the sweep reaches each sample's last step
                    scale = PlainScale(e.contiguous(), final=(last, final))
                    start = tuple(torch.zeros_like(c) for c in final)
                else:  # every sample's last step is T − 1: the final state's gradient is the carry entering it
                    scale, start = PlainScale(e.contiguous()), tuple(c.clone() for c in final)
                g = arch.backward_sweep(tape, scale, start, w_hh, **extra, keep_projections=with_params or k > 0)
                dxp, dyp, dh, dc = g.dx_proj, g.dh_proj, g.dh, g.dc
                grad_initial = g.grad_initial
                if with_params or k > 0:
                    down = flip(g.dx_proj @ w_ih)  # ∂L/∂(input of layer k) through this direction
                    below = down if below is None else below + down
            params = {}
            if with_params and log_domain:
                params = log_domain_parameter_grads(arch, tape, flip(inputs[k]), g, steps, k, d, b_ih is not None,
                                                    bool(extra))
            elif with_params:
                params = parameter_grads(arch, tape, flip(inputs[k]), dxp, dyp, dh, k, d, b_ih is not None, bool(extra))
            norm_dh, norm_dc, norm_explicit = (None if v is None else stable_norm(v) for v in (dh, dc, plain_explicit))
            if not log_domain:  # the plain sweep's log10 norms are its norms' logarithms
                log10_dh, log10_explicit = norm_dh.log10(), norm_explicit.log10()
                log10_dc = None if norm_dc is None else norm_dc.log10()
            fl = lambda v: None if v is None else flip(v)  # noqa: E731
            sweeps[k * D + d] = LayerSweep(flip(dh), fl(dc), flip(norm_dh), fl(norm_dc), flip(log10_dh), fl(log10_dc),
                                           flip(plain_explicit), flip(norm_explicit), flip(log10_explicit), params,
                                           grad_initial)
        if dropout_masks is not None and k > 0:  # through the mask on layer k−1's output
            below = split_through(below, dropout_masks[k - 1]) if log_domain else below * dropout_masks[k - 1]
        explicit = below  # the explicit part for layer k−1
    return sweeps, explicit
