"""bptt(): backpropagation through time from the hand-derived recurrences, without autograd.

The driver runs each layer's forward sweep (keeping its tape), then the layers' backward sweeps
from the top down (each architecture's ``backward_sweep``): the gradient on a layer's input
sequence is the explicit gradient of the layer below. Everything that does not depend on the
recurrence is one batched matrix product per layer (eq. PARAM-grads in docs/derivations.md):

    ∂L/∂W_ih = Σ_t δx_tᵀ x_t,   ∂L/∂b_ih = Σ_t δx_t,   ∂L/∂x_t = δx_t W_ih,
    ∂L/∂W_hh = Σ_t δy_tᵀ h_{t−1}, ∂L/∂b_hh = Σ_t δy_t,
with δx, δy the gradients on the input and recurrent projections.

With ``log_domain=True`` the backward sweeps carry the adjoint at unit size with a separate log
scale (``gradlab/engine/logscale.py``), so log10 ‖∂L/∂h_t‖ is exact at any distance, also where
the plain value is 0.0 or inf.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from gradlab.engine.fused import fused_function, fused_layer
from gradlab.engine.logscale import LOG_ZERO, LogScale, PlainScale, add_logs, log10_norm, split_log, to_plain
from gradlab.engine.numerics import stable_norm
from gradlab.engine.params import log_domain_parameter_grads, parameter_grads
from gradlab.engine.trace import Trace
from gradlab.models.architectures import Tape
from gradlab.models.convert import from_torch
from gradlab.models.layout import Packing, SequenceLayout, along_time, within_length_reversal
from gradlab.models.recurrent import RecurrentModel, State

GradState = Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]


def as_gradlab_model(model: nn.Module, caller: str) -> RecurrentModel:
    """``model`` itself, or the gradlab copy of a torch nn.RNN/LSTM/GRU."""
    if isinstance(model, (nn.RNN, nn.LSTM, nn.GRU)):
        return from_torch(model)
    if not isinstance(model, RecurrentModel):
        raise TypeError(f"{caller} takes a gradlab or torch SRN/LSTM/GRU, got {type(model).__name__}")
    return model


def sweep_order(direction: int, lengths: Optional[torch.Tensor], T: int):
    """The map between input order and the order a direction sweeps its sequence [T, B, …] in (its own
    inverse): nothing forward; the reverse direction runs from each sample's own last position."""
    if not direction:
        return lambda seq: seq
    if lengths is None:
        return lambda seq: seq.flip(0)
    positions = within_length_reversal(lengths, T)
    return lambda seq: along_time(seq, positions)


def forward_tapes(model: RecurrentModel, x_tm: torch.Tensor, init: tuple[torch.Tensor, ...],
                  lengths: Optional[torch.Tensor] = None, dropout_masks: Optional[list] = None,
                  packing: Optional[Packing] = None, fused: bool = True):
    """Each layer's and direction's forward (no autograd): torch's fused kernel for the layer
    (``gradlab/engine/fused.py``) and the architecture's ``tape_from_states``, or with ``fused=False``
    (and for the linear SRN, which torch lacks) the architecture's own eager ``forward_sweep``.

    x_tm: [T, B, I] (padded past ``lengths`` [B], if given; ``packing`` its PackedSequence structure);
    init: one [L·D, B, H] per state name; dropout_masks: the multiplier [T, B, D·H] on each layer's
    output but the last, or None. Returns (inputs, tapes): every layer's input sequence [T, B, in],
    bottom first, and the tapes at index k·D + d, each in the order its direction swept (the reverse
    direction's from each sample's last position)."""
    arch, D, T = model.architecture, model.num_directions, x_tm.shape[0]
    P = model.output_size
    if packing is not None:
        lengths = packing.lengths
    use_fused = fused and fused_function(model) is not None
    inputs, tapes, seq = [], [], x_tm
    with torch.no_grad(), torch.autocast(x_tm.device.type, enabled=False):  # in the model's own dtype
        for k in range(model.num_layers):
            inputs.append(seq)
            layer_init = [tuple(s[k * D + d] for s in init) for d in range(D)]
            out = fused_layer(model, k, seq, tuple(s[k * D:(k + 1) * D] for s in init), packing) if use_fused else None
            for d in range(D):
                w_ih, w_hh, b_ih, b_hh = model.layer_parameters(k, d)
                extra = model.extra_weights(k, d)
                flip = sweep_order(d, lengths, T)
                x_proj = flip(F.linear(seq, w_ih, b_ih))
                if out is None:
                    tapes.append(arch.forward_sweep(x_proj, layer_init[d], w_hh, b_hh, **extra))
                else:
                    h = torch.cat((layer_init[d][0].unsqueeze(0), flip(out[..., d * P:(d + 1) * P])))
                    tapes.append(arch.tape_from_states(x_proj, h, layer_init[d], w_hh, b_hh, **extra))
            if out is None:
                outputs = [sweep_order(d, lengths, T)(tapes[k * D + d].h[1:]) for d in range(D)]
                out = torch.cat(outputs, dim=-1) if D > 1 else outputs[0]
            seq = out
            if dropout_masks is not None and k < model.num_layers - 1:
                seq = seq * dropout_masks[k]
    return inputs, tapes


def outputs_of(model: RecurrentModel, tapes: list, lengths: Optional[torch.Tensor] = None):
    """What the model returns, from its tapes: (the top layer's output [T, B, D·H], time-major in
    input order; the final state, one [L·D, B, ·] per state name, each sample's after its own last
    step with ``lengths``)."""
    L, D = model.num_layers, model.num_directions
    T, B = tapes[0].h.shape[0] - 1, tapes[0].h.shape[1]
    top = [sweep_order(d, lengths, T)(tapes[(L - 1) * D + d].h[1:]) for d in range(D)]
    batch = torch.arange(B, device=tapes[0].h.device)
    last = (lengths - 1).clamp_min(0).to(batch.device) if lengths is not None else torch.full_like(batch, T - 1)
    states = [[tape.h[1:][last, batch], *([tape.c[1:][last, batch]] if hasattr(tape, "c") else [])]
              for tape in tapes]
    finals = tuple(torch.stack([st[i] for st in states]) for i in range(len(model.state_names)))
    return (torch.cat(top, dim=-1) if D > 1 else top[0]), finals


def tapes(model: nn.Module, x: torch.Tensor, state: Optional[State] = None,
          dropout_masks: Optional[list] = None) -> list[Tape]:
    """What the forward pass computes inside every layer and direction (index k·D + d): each
    architecture's tape (``h`` [T+1, B, H] with h[0] the initial state; the LSTM's ``c`` and
    ``gates`` [T, B, 4H] in torch's order i, f, g, o; the GRU's ``gates`` r, z, n and m), in the
    order the direction swept (the reverse direction's from the last position). x as the model takes it;
    dropout_masks as in :func:`bptt`."""
    model = as_gradlab_model(model, "tapes")
    layout = model.layout_of(x)
    masks = check_dropout(model, dropout_masks, "tapes")
    x_tm = layout.time_major(x)
    return forward_tapes(model, x_tm, model.initial_state(state, layout, x_tm.shape[1], x_tm), layout.lengths,
                         masks, layout.packing)[1]


def split_log_state(parts: tuple[torch.Tensor, ...]) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """A state gradient (∂L/∂h[, ∂L/∂c]), each [..., H_s], as unit-size parts and one log scale [...]."""
    hat, log = split_log(torch.cat(parts, dim=-1))
    return hat.split([p.shape[-1] for p in parts], dim=-1), log


def split_through(logged: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor):
    """A log-domain gradient (x̂ [T, B, F], log [T, B]) times ``mask`` [T, B, F], back in that form."""
    hat, log = split_log(logged[0] * mask)
    return hat, torch.where(log <= LOG_ZERO / 2, log, log + logged[1])


def check_dropout(model: RecurrentModel, dropout_masks: Optional[list], caller: str,
                  takes_masks: bool = True) -> Optional[list]:
    """The masks a sweep must apply between layers: None in eval mode or without dropout; refused
    when the model would draw them and the caller has not given the ones its forward used."""
    if not (model.training and model.dropout and model.num_layers > 1):
        return None
    if dropout_masks is None or len(dropout_masks) != model.num_layers - 1:
        remedy = (f"pass dropout_masks= (the {model.num_layers - 1} masks its forward used) or call model.eval()"
                  if takes_masks else "call model.eval()")
        raise ValueError(f"{caller}: the model has dropout={model.dropout} between layers in training mode; {remedy}")
    return dropout_masks


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


def _by_layer(values: list[torch.Tensor], D: int, own: bool = False) -> torch.Tensor:
    """Per layer and direction (index k·D + d), [T, B, …] tensors → [L, D, T, B, …]; with ``own``
    (the values are this sweep's own buffers) a single one is viewed, not copied."""
    stacked = values[0].unsqueeze(0) if own and len(values) == 1 else torch.stack(values)
    return stacked.view(stacked.shape[0] // D, D, *stacked.shape[1:])


def _numpy_stack(values: list[torch.Tensor], D: int) -> np.ndarray:
    """Per layer and direction, [T, B] tensors → [L, D, T, B] float64 array."""
    return _by_layer(values, D).to(torch.float64).cpu().numpy()


def check_grad_output(layout: SequenceLayout, grad_output, expected: tuple[int, int, int]) -> torch.Tensor:
    """∂L/∂output as [T, B, D·H], after checking it is shaped (or packed) like the model's output."""
    def shape_of(g):
        return (f"a PackedSequence of {list(g.data.shape)}" if isinstance(g, PackedSequence)
                else list(g.shape) if isinstance(g, torch.Tensor) else type(g).__name__)

    want = (f"a PackedSequence like the input, of [N, {expected[2]}]" if layout.packing is not None
            else list(layout.restore(torch.empty(expected)).shape))
    packed_alike = (isinstance(grad_output, PackedSequence) and layout.packing is not None
                    and torch.equal(grad_output.batch_sizes, layout.packing.batch_sizes))
    plain_alike = isinstance(grad_output, torch.Tensor) and layout.packing is None
    if not (packed_alike or plain_alike) or tuple(layout.time_major(grad_output).shape) != expected:
        raise ValueError(f"bptt: grad_output must be shaped like the model's output, {want}; got {shape_of(grad_output)}")
    return layout.time_major(grad_output)


def valid_positions(lengths: Optional[torch.Tensor], T: int, B: int) -> np.ndarray:
    """[T, B] bool: True where a state exists (t < each sample's length)."""
    if lengths is None:
        return np.ones((T, B), dtype=bool)
    return (torch.arange(T).unsqueeze(1) < lengths.cpu().unsqueeze(0)).numpy()


def bptt(model: nn.Module, x: torch.Tensor, grad_output: torch.Tensor, state: Optional[State] = None,
         grad_state: Optional[GradState] = None, log_domain: bool = False,
         dropout_masks: Optional[list] = None) -> Trace:
    """Backpropagation through time from the derived recurrences (runs under ``torch.no_grad()``).

    model: a gradlab SRN, LSTM or GRU, or a torch nn.RNN/LSTM/GRU (copied with ``from_torch``).
    x: as the model takes it ([T, B, I], [B, T, I] if batch_first, [T, I], or a PackedSequence).
    grad_output: ∂L/∂output, shaped like the model's output (packed like it for a packed input). state: the initial state (zeros when None).
    grad_state: ∂L/∂h_n (LSTM: (∂L/∂h_n, ∂L/∂c_n)), shaped like the final state; zero when None.
    log_domain: carry the adjoint with a separate log scale, so that ``log10_grad_norms`` is exact
    where the plain values under- or overflow.
    dropout_masks: for a model with dropout between layers in training mode, the multiplier
    [T, B, D·H] (time-major, padded) its forward put on each layer's output but the last, as the
    "dropout" hook points see it; bptt draws no random numbers of its own.

    Returns a :class:`Trace` with every tensor kept: ``grad(name, layer)`` the total ∂L/∂h_t, ∂L/∂c_t
    [T, B, H]; ``param_grads`` by torch's parameter names; ``input_grad`` shaped like x;
    ``initial_grads`` shaped like the initial state. For a packed batch ``trace.mask`` marks the
    positions past each sample's length, where no state exists.
    """
    model = as_gradlab_model(model, "bptt")
    layout = model.layout_of(x)
    dropout_masks = check_dropout(model, dropout_masks, "bptt")
    with torch.no_grad():
        x_tm = layout.time_major(x)
        T, B = x_tm.shape[:2]
        g_tm = check_grad_output(layout, grad_output, (T, B, model.num_directions * model.output_size))
        width = (T, B, model.num_directions * model.output_size)
        if dropout_masks is not None and any(tuple(m.shape) != width for m in dropout_masks):
            raise ValueError(f"bptt: each of dropout_masks must be [T, B, D·H] = {list(width)} (time-major, as the "
                             f"\"dropout\" hook points see it); got {[list(m.shape) for m in dropout_masks]}")
        init = model.initial_state(state, layout, B, x_tm)
        if grad_state is None:
            end_parts = tuple(torch.zeros_like(s) for s in init)
        else:
            try:  # shaped like the final state, which is shaped like the initial one
                end_parts = model.initial_state(grad_state, layout, B, x_tm)
            except ValueError as exc:
                raise ValueError(f"bptt: grad_state must be shaped like the final state; {exc}") from None
    trace = sweep_trace(model, layout, x_tm, init, g_tm, end_parts, log_domain, dropout_masks)
    trace.meta["engine"] = "gradlab.bptt: hand-derived BPTT" + (" in the log domain" if log_domain else "")
    return trace


def sweep_trace(model: RecurrentModel, layout: SequenceLayout, x_tm: torch.Tensor, init: tuple[torch.Tensor, ...],
                g_tm: torch.Tensor, end_parts: tuple[torch.Tensor, ...], log_domain: bool,
                dropout_masks: Optional[list] = None, layer_tapes: Optional[tuple[list, list]] = None,
                with_params: bool = True) -> Trace:
    """The engine behind ``bptt`` and ``record``: the forward tapes (or the given ``(inputs, tapes)``
    of :func:`forward_tapes`), one backward sweep per layer and direction, and the Trace of it with
    every tensor. x_tm: [T, B, I]; init, end_parts: one [L·D, B, ·] per state name (the initial
    state, ∂L/∂ the final state); g_tm: ∂L/∂output [T, B, D·H], time-major."""
    T, B = x_tm.shape[:2]
    with torch.no_grad(), torch.autocast(x_tm.device.type, enabled=False):  # in the model's own dtype
        grad_finals = [tuple(p[i] for p in end_parts) for i in range(end_parts[0].shape[0])]
        if log_domain:
            grad_finals = [split_log_state(e) for e in grad_finals]
            g_tm = split_log(g_tm)
        if layer_tapes is None:
            layer_tapes = forward_tapes(model, x_tm, init, layout.lengths, dropout_masks, layout.packing)
        inputs, tapes_ = layer_tapes
        layers, dx = backward_layers(model, inputs, tapes_, g_tm, grad_finals, log_domain, lengths=layout.lengths,
                                     dropout_masks=dropout_masks, with_params=with_params)
        if log_domain:
            dx = None if dx is None else to_plain(*dx)
            initials = [tuple(to_plain(c, log) for c in hats) for hats, log in (lay.grad_initial for lay in layers)]
        else:
            initials = [lay.grad_initial for lay in layers]
    names, D = model.state_names, model.num_directions
    per_state = {"h": [lay.dh for lay in layers], "c": [lay.dc for lay in layers]}
    per_state_norms = {"h": [lay.norm_dh for lay in layers], "c": [lay.norm_dc for lay in layers]}
    per_state_log10 = {"h": [lay.log10_dh for lay in layers], "c": [lay.log10_dc for lay in layers]}
    params = {name: g for lay in layers for name, g in lay.params.items()}
    return Trace(
        kind=model.kind, hidden_size=model.hidden_size,
        norms={n: _numpy_stack(per_state_norms[n], D) for n in names},
        explicit_norms=_numpy_stack([lay.norm_explicit for lay in layers], D),
        log10_norms={n: _numpy_stack(per_state_log10[n], D) for n in names},
        explicit_log10_norms=_numpy_stack([lay.log10_explicit for lay in layers], D),
        grads={n: _by_layer(per_state[n], D, own=True) for n in names},
        explicit_grads=_by_layer([lay.explicit for lay in layers], D),
        param_grads={name: params[name] for name, _ in model.named_parameters()} if with_params else None,
        input_grad=None if dx is None else layout.restore(dx),
        initial_grads={n: layout.state_out(torch.stack([c[i] for c in initials])) for i, n in enumerate(names)},
        mask=valid_positions(layout.lengths, T, B),
        meta={"engine": "", "dtype": str(x_tm.dtype).replace("torch.", ""), "device": str(x_tm.device)},
    )

