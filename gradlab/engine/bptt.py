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

from typing import Optional, Union

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from gradlab.engine.forward import check_dropout, forward_tapes
from gradlab.engine.layers import LayerSweep, backward_layers, split_log_state
from gradlab.engine.logscale import split_log, to_plain
from gradlab.engine.trace import Trace
from gradlab.models.architectures import Tape
from gradlab.models.convert import from_torch
from gradlab.models.layout import SequenceLayout
from gradlab.models.recurrent import RecurrentModel, State

GradState = Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]


def as_gradlab_model(model: nn.Module, caller: str) -> RecurrentModel:
    """``model`` itself, or the gradlab copy of a torch nn.RNN/LSTM/GRU."""
    if isinstance(model, (nn.RNN, nn.LSTM, nn.GRU)):
        return from_torch(model)
    if not isinstance(model, RecurrentModel):
        raise TypeError(f"{caller} takes a gradlab or torch SRN/LSTM/GRU, got {type(model).__name__}")
    return model


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


def sweep_layers(model: RecurrentModel, layout: SequenceLayout, x_tm: torch.Tensor, init: tuple[torch.Tensor, ...],
                 g_tm: torch.Tensor, end_parts: tuple[torch.Tensor, ...], log_domain: bool,
                 dropout_masks: Optional[list] = None, layer_tapes: Optional[tuple[list, list]] = None,
                 with_params: bool = True, keep_grads: bool = True, reuse: Optional[dict[int, LayerSweep]] = None,
                 keep_downs: bool = False) -> tuple[list[LayerSweep], Optional[tuple]]:
    """The forward tapes (or the given ``(inputs, tapes)`` of :func:`forward_tapes`) and one backward
    sweep per layer and direction (``backward_layers``; ``reuse``, ``keep_downs`` as there). x_tm: [T, B, I];
    init, end_parts: one [L·D, B, ·] per state name (the initial state, ∂L/∂ the final state); g_tm:
    ∂L/∂output [T, B, D·H], time-major. Returns (the LayerSweeps at index k·D + d, ∂L/∂x as the sweep
    formed it or None)."""
    with torch.no_grad(), torch.autocast(x_tm.device.type, enabled=False):  # in the model's own dtype
        grad_finals = [tuple(p[i] for p in end_parts) for i in range(end_parts[0].shape[0])]
        if log_domain:
            grad_finals = [split_log_state(e) for e in grad_finals]
            g_tm = split_log(g_tm)
        if layer_tapes is None:
            layer_tapes = forward_tapes(model, x_tm, init, layout.lengths, dropout_masks, layout.packing)
        inputs, tapes_ = layer_tapes
        return backward_layers(model, inputs, tapes_, g_tm, grad_finals, log_domain, lengths=layout.lengths,
                               dropout_masks=dropout_masks, with_params=with_params, keep_grads=keep_grads,
                               reuse=reuse, keep_downs=keep_downs)


def log10_norms_of(model: RecurrentModel, layers: list[LayerSweep]) -> dict[str, np.ndarray]:
    """The sweeps' log10 norms by state name, [L, D, T, B] float64."""
    per_state = {"h": [lay.log10_dh for lay in layers], "c": [lay.log10_dc for lay in layers]}
    return {n: _numpy_stack(per_state[n], model.num_directions) for n in model.state_names}


def sweep_trace(model: RecurrentModel, layout: SequenceLayout, x_tm: torch.Tensor, init: tuple[torch.Tensor, ...],
                g_tm: torch.Tensor, end_parts: tuple[torch.Tensor, ...], log_domain: bool,
                dropout_masks: Optional[list] = None, layer_tapes: Optional[tuple[list, list]] = None,
                with_params: bool = True, keep_grads: bool = True) -> Trace:
    """The engine behind ``bptt`` and ``record``: :func:`sweep_layers`, and the Trace of it with every
    tensor. keep_grads: keep the per-step gradient tensors (``grads``, ``explicit_grads``); without, only
    their norms are formed."""
    layers, dx = sweep_layers(model, layout, x_tm, init, g_tm, end_parts, log_domain, dropout_masks, layer_tapes,
                              with_params, keep_grads)
    return trace_of_sweeps(model, layout, x_tm, layers, dx, log_domain, with_params, keep_grads)


def trace_of_sweeps(model: RecurrentModel, layout: SequenceLayout, x_tm: torch.Tensor, layers: list[LayerSweep],
                    dx: Optional[tuple], log_domain: bool, with_params: bool, keep_grads: bool) -> Trace:
    """The Trace of :func:`sweep_layers`' result (x_tm: the input [T, B, I] it swept)."""
    T, B = x_tm.shape[:2]
    with torch.no_grad():
        if log_domain:
            dx = None if dx is None else to_plain(*dx)
            initials = [tuple(to_plain(c, log) for c in hats) for hats, log in (lay.grad_initial for lay in layers)]
        else:
            initials = [lay.grad_initial for lay in layers]
    names, D = model.state_names, model.num_directions
    per_state = {"h": [lay.dh for lay in layers], "c": [lay.dc for lay in layers]}
    per_state_norms = {"h": [lay.norm_dh for lay in layers], "c": [lay.norm_dc for lay in layers]}
    params = {name: g for lay in layers for name, g in lay.params.items()}
    return Trace(
        kind=model.kind, hidden_size=model.hidden_size,
        norms={n: _numpy_stack(per_state_norms[n], D) for n in names},
        explicit_norms=_numpy_stack([lay.norm_explicit for lay in layers], D),
        log10_norms=log10_norms_of(model, layers),
        explicit_log10_norms=_numpy_stack([lay.log10_explicit for lay in layers], D),
        grads={n: _by_layer(per_state[n], D, own=True) for n in names} if keep_grads else None,
        explicit_grads=_by_layer([lay.explicit for lay in layers], D, own=True) if keep_grads else None,
        param_grads={name: params[name] for name, _ in model.named_parameters()} if with_params else None,
        input_grad=None if dx is None else layout.restore(dx),
        initial_grads={n: layout.state_out(torch.stack([c[i] for c in initials])) for i, n in enumerate(names)},
        mask=valid_positions(layout.lengths, T, B),
        meta={"engine": "", "dtype": str(x_tm.dtype).replace("torch.", ""), "device": str(x_tm.device)},
    )
