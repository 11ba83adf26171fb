"""record(): one recorded forward and backward pass; trace_of_run(): the Trace of a forward that
already ran elsewhere, from the gradients that reached its outputs (what ``gradlab.watch`` uses).

Both run the one engine of ``gradlab/engine/bptt.py``: the forward tapes (compiled forward sweeps, or
torch's fused forward with the tape rebuilt from its states), then one hand-derived backward sweep
per layer and direction (in
the log domain by default, giving the plain norms, the log10 norms and the tensors at once). Which
engine ran is said in ``trace.meta["engine"]``.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Callable, Optional

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from gradlab.engine.bptt import as_gradlab_model, log10_norms_of, sweep_layers, sweep_trace, trace_of_sweeps
from gradlab.engine.forward import forward_tapes, outputs_of
from gradlab.engine.trace import Trace
from gradlab.models.dropout import dropout_multiplier
from gradlab.models.recurrent import RecurrentModel, State, as_state, state_parts

#: With ``full=None`` the tensors are kept when one state's gradients have at most this many
#: elements (T·B·H·layers·directions); longer runs keep only the norms.
FULL_TENSOR_LIMIT = 2**24


def takes_two_arguments(fn: Callable) -> bool:
    """Whether ``fn`` can be called with two positional arguments (output, final state)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return any(p.kind is p.VAR_POSITIONAL for p in params) or len(positional) >= 2


class OutputMismatch(RuntimeError):
    """The forward recomputed from a run's input differs from the output that run returned."""


def trace_of_run(model: RecurrentModel, x, state: Optional[State], grad_output, grad_state: tuple,
                 dropout_masks: Optional[list] = None, full: bool = False, log_domain: bool = True,
                 distance: bool = False, expected=None, tolerance: float = 0.0, with_params: bool = False) -> Trace:
    """The Trace of a forward of ``model`` on ``x`` that has already run (torch's fused module inside
    a user's model), from the gradients its backward pass brought to the outputs.

    grad_output: ∂L/∂output as the output (a tensor, or a PackedSequence's data), or None (zero);
    grad_state: ∂L/∂ each part of the final state as the model returns it, None where the loss did
    not read it. dropout_masks: the masks that forward used. distance: also the sweep seeded only
    with the explicit gradient at each sample's last step (and ∂L/∂h_n):
    ``trace.distance_log10_norms``. expected: the output that forward returned, as it returned it;
    the recomputed top layer must equal it to ``tolerance`` × max(1, max |expected|), else
    :class:`OutputMismatch`. with_params: the total sweep also forms ``trace.param_grads`` and
    ``trace.input_grad`` (eq. PARAM-grads: what the forward's own backward pass would give).
    """
    layout = model.layout_of(x)
    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        x_tm = layout.time_major(x).detach().to(dtype)
        T, B = x_tm.shape[:2]
        init = model.initial_state(None if state is None else as_state(tuple(p.detach().to(dtype)
                                                                              for p in state_parts(state))),
                                   layout, B, x_tm)
        layer_tapes = forward_tapes(model, x_tm, init, layout.lengths, dropout_masks, layout.packing)
        if expected is not None:
            _check_output(layout, outputs_of(model, layer_tapes[1], layout.lengths)[0], expected, tolerance)
        g_tm = _time_major_grad(layout, grad_output, (T, B, model.num_directions * model.output_size), x_tm)
        end_parts = tuple(torch.zeros_like(i) if g is None else layout.state_in(g.detach().to(dtype))
                          for i, g in zip(init, grad_state))
    with_distance = distance and log_domain
    layers, dx = sweep_layers(model, layout, x_tm, init, g_tm, end_parts, log_domain, dropout_masks, layer_tapes,
                              with_params=with_params, keep_grads=full, keep_downs=with_distance)
    trace = trace_of_sweeps(model, layout, x_tm, layers, dx, log_domain, with_params, full)
    if with_distance:
        seeded = at_last_steps(g_tm, layout.lengths, model.num_directions)
        if torch.equal(seeded, g_tm):  # the loss reads only the last steps: the distance sweep is the sweep
            trace.distance_log10_norms = {n: v.copy() for n, v in trace.log10_norms.items()}
        else:  # a top direction whose seed is its whole explicit gradient sweeps as in the total sweep
            D, H, top = model.num_directions, model.output_size, (model.num_layers - 1) * model.num_directions
            reuse = {top + d: layers[top + d] for d in range(D)
                     if torch.equal(seeded[..., d * H:(d + 1) * H], g_tm[..., d * H:(d + 1) * H])}
            distance_layers = sweep_layers(model, layout, x_tm, init, seeded, end_parts, True, dropout_masks,
                                           layer_tapes, with_params=False, keep_grads=False, reuse=reuse)[0]
            trace.distance_log10_norms = log10_norms_of(model, distance_layers)
    if not with_params:
        trace = replace(trace, input_grad=None)
    if not log_domain:
        trace.log10_norms = trace.explicit_log10_norms = None
    return trace


def _time_major_grad(layout, grad, shape: tuple[int, int, int], like: torch.Tensor) -> torch.Tensor:
    """∂L/∂output (a tensor shaped like the output, a packed output's data, or None) → [T, B, D·H]."""
    if grad is None:
        return like.new_zeros(shape)
    grad = grad.detach().to(like.dtype)
    if layout.packing is not None:
        p = layout.packing
        grad = PackedSequence(grad, p.batch_sizes, p.sorted_indices, p.unsorted_indices)
    return layout.time_major(grad)


def _check_output(layout, recomputed: torch.Tensor, expected, tolerance: float) -> None:
    want = layout.time_major(expected).detach().to(recomputed.dtype)
    if want.numel() == 0:
        return
    err = float((recomputed - want).abs().max())
    allowed = tolerance * max(1.0, float(want.abs().max()))
    if not err <= allowed:
        raise OutputMismatch(f"the recomputed forward is {err:.2g} away from the output that ran (allowed {allowed:.2g})")


def at_last_steps(g_tm: torch.Tensor, lengths: Optional[torch.Tensor], D: int) -> torch.Tensor:
    """∂L/∂output [T, B, D·H] kept only at each direction's last step of each sample (its own last
    position forward, position 0 reverse): the seed of the distance sweep."""
    T, B, DH = g_tm.shape
    H = DH // D
    batch = torch.arange(B, device=g_tm.device)
    last = [(lengths - 1).to(g_tm.device) if lengths is not None else torch.full_like(batch, T - 1),
            torch.zeros_like(batch)][:D]
    seeded = torch.zeros_like(g_tm)
    for d in range(D):
        part = slice(d * H, (d + 1) * H)
        seeded[last[d], batch, part] = g_tm[last[d], batch, part]
    return seeded


def record(
    model: nn.Module,
    x,
    loss_fn: Callable[..., torch.Tensor],
    state: Optional[State] = None,
    full: Optional[bool] = None,
    log_domain: bool = True,
) -> Trace:
    """Run ``model`` on ``x``, back-propagate ``loss_fn(output)`` and return the :class:`Trace`.

    model: a gradlab SRN/LSTM/GRU, or a torch nn.RNN/LSTM/GRU (copied with ``from_torch``).
    x: [T, B, I] ([B, T, I] if batch_first; [T, I] unbatched), or a PackedSequence (then
        ``trace.mask`` marks the positions past each sample's length, and the norms are masked there).
    loss_fn: receives exactly the ``output`` the model returns ([T, B, D·H] laid out like x, the
        top layer's h_t) — and, if it takes two arguments, the final state as the model returns it
        too (h_n, or (h_n, c_n)) — and returns a scalar tensor.
    state: the initial state as the model takes it (zeros when None).
    full: keep the full gradient tensors; None keeps them up to ``FULL_TENSOR_LIMIT`` elements.
    log_domain: carry the sweep in the log domain (the default), so that ``trace.log10_grad_norms``
        is exact where the plain norms under- or overflow; the plain norms and tensors come from the
        same sweep. False: a plain sweep, no log10 norms.

    One pass (``gradlab/engine/bptt.py``): the forward with its tapes, layer by layer (compiled, or
    torch's fused forward with the tape rebuilt from its states); autograd only for ∂L/∂output and ∂L/∂(final state) through ``loss_fn``;
    then one hand-derived backward sweep per layer and direction. Parameter ``.grad`` are untouched.
    A model with dropout between layers in training mode draws its masks as its own forward would
    (from torch's generator); call ``model.eval()`` for a record without them.
    """
    model = as_gradlab_model(model, "record")
    layout = model.layout_of(x)
    with torch.no_grad():
        x_tm = layout.time_major(x)
        T, B = x_tm.shape[:2]
        init = model.initial_state(None if state is None else as_state(tuple(p.detach() for p in state_parts(state))),
                                   layout, B, x_tm)
        masks = None
        if model.training and model.dropout and model.num_layers > 1:  # a training forward draws its masks
            width = model.num_directions * model.output_size
            masks = [dropout_multiplier(x_tm.new_empty(T, B, width), model.dropout, layout.packing)
                     for _ in range(model.num_layers - 1)]
        layer_tapes = forward_tapes(model, x_tm, init, layout.lengths, masks, layout.packing)
        output_tm, finals = outputs_of(model, layer_tapes[1], layout.lengths)
    output, output_leaf = _leaf_like(layout.restore(output_tm))
    final_leaves = tuple(layout.state_out(f).detach().requires_grad_(True) for f in finals)
    final = as_state(final_leaves)
    with torch.enable_grad():
        loss = loss_fn(output, final) if takes_two_arguments(loss_fn) else loss_fn(output)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ValueError("loss_fn must return a scalar tensor")
        grads = torch.autograd.grad(loss.reshape(()), (output_leaf, *final_leaves), allow_unused=True)
    g_out = torch.zeros_like(output_leaf) if grads[0] is None else grads[0]
    g_tm = layout.time_major(output._replace(data=g_out) if isinstance(output, PackedSequence) else g_out)
    end_parts = tuple(layout.state_in(torch.zeros_like(f) if g is None else g) for f, g in zip(final_leaves, grads[1:]))
    keep = T * B * model.hidden_size * model.num_layers * model.num_directions <= FULL_TENSOR_LIMIT if full is None else full
    trace = sweep_trace(model, layout, x_tm, init, g_tm, end_parts, log_domain, masks, layer_tapes, with_params=False,
                        keep_grads=keep)
    trace = replace(trace, input_grad=None)  # bptt's fields; record leaves .grad alone
    trace.loss = float(loss.detach())
    if not log_domain:
        trace.log10_norms = trace.explicit_log10_norms = None
    trace.meta["engine"] = ("gradlab.record: the forward with its tapes, autograd for dL/doutput only, one hand-derived "
                            "backward sweep" + (" in the log domain (plain norms, log10 norms and tensors from it)"
                                                if log_domain else " (plain)"))
    return trace


def _leaf_like(output):
    """(the output as the loss sees it, the leaf tensor autograd differentiates at): a tensor, or a
    PackedSequence whose data is the leaf."""
    if isinstance(output, PackedSequence):
        leaf = output.data.detach().requires_grad_(True)
        return output._replace(data=leaf), leaf
    leaf = output.detach().requires_grad_(True)
    return leaf, leaf
