"""The autograd twin of :func:`gradlab.bptt`: the same quantities from torch.autograd.

Every h_t and c_t is captured at its hook point in the forward pass, and one call of
``torch.autograd.grad`` on L = ⟨output, grad_output⟩ + ⟨final state, grad_state⟩ returns the
gradients on the parameters, the input, the initial state and every captured state.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch.nn.utils.rnn import PackedSequence

from gradlab.engine.bptt import GradState, valid_positions
from gradlab.engine.numerics import stable_norm
from gradlab.engine.trace import Trace
from gradlab.models.hooks import attached
from gradlab.models.recurrent import RecurrentModel, State, as_state, state_parts


def data_of(x):
    """A tensor itself, or a PackedSequence's data."""
    return x.data if isinstance(x, PackedSequence) else x


def autograd_reference(model: RecurrentModel, x: torch.Tensor, grad_output: torch.Tensor,
                       state: Optional[State] = None, grad_state: Optional[GradState] = None,
                       dropout_masks: Optional[list] = None) -> Trace:
    """Same arguments and the same Trace fields as ``bptt`` (tensors, parameter, input and initial
    gradients), computed by autograd. With ``dropout_masks`` the model's own masks are replaced by
    these at its "dropout" hook points."""
    names, L, D, H = model.state_names, model.num_layers, model.num_directions, model.hidden_size
    layout = model.layout_of(x)
    B = layout.time_major(x).shape[1]
    x_data = (x.data if isinstance(x, PackedSequence) else x).detach().clone().requires_grad_(True)
    x_leaf = x._replace(data=x_data) if isinstance(x, PackedSequence) else x_data
    init = model.initial_state(state, layout, B, layout.time_major(x))
    leaves = [layout.state_out(p).detach().clone().requires_grad_(True) for p in init]
    captured: dict[tuple[str, int, int, int], torch.Tensor] = {}  # (name, layer, direction, step swept)
    positions: dict[tuple[str, int, int, int], object] = {}  # … → the input position(s) of that step

    def capture(name: str, k: int, d: int):
        def fn(tensor: torch.Tensor, t) -> None:
            key = (name, k, d, sum(1 for c in captured if c[:3] == (name, k, d)))
            captured[key], positions[key] = tensor, t
        return fn

    pairs = [(model.hook_point(n, k, d), capture(n, k, d)) for n in names for k in range(L) for d in range(D)]
    pairs += [(model.hook_point("dropout", k), lambda _, t, m=m: m) for k, m in enumerate(dropout_masks or ())]
    with torch.enable_grad(), attached(pairs):
        output, final = model(x_leaf, as_state(tuple(leaves)))
        loss = (data_of(output) * data_of(grad_output)).sum()
        if grad_state is not None:
            loss = loss + sum((f * g).sum() for f, g in zip(state_parts(final), state_parts(grad_state)))
        params = [n for n, _ in model.named_parameters()]
        keys = list(captured)
        wrt = [p for _, p in model.named_parameters()] + [x_data] + leaves + [captured[k] for k in keys]
        grads = torch.autograd.grad(loss, wrt, allow_unused=True)
    grads = [torch.zeros_like(w) if g is None else g for g, w in zip(grads, wrt)]
    by_key = dict(zip(keys, grads[len(params) + 1 + len(names):]))
    T = layout.time_major(output).shape[0]
    per_state = {n: x_data.new_zeros(L, D, T, B, model.state_sizes[n]) for n in names}
    batch = torch.arange(B)
    for (n, k, d, step), g in by_key.items():  # each step's gradient at its samples' input positions
        t = positions[(n, k, d, step)]
        if isinstance(t, int):
            per_state[n][k, d, t] = g.reshape(B, -1)
        else:  # the reverse direction of a packed batch: each sample at its own position
            per_state[n][k, d, t, batch] = g.reshape(B, -1)
    norms = {n: stable_norm(g).cpu().numpy() for n, g in per_state.items()}
    return Trace(
        kind=model.kind, hidden_size=H, norms=norms, explicit_norms=np.zeros((L, D, T, B)), grads=per_state,
        mask=valid_positions(layout.lengths, T, B),
        param_grads=dict(zip(params, grads[: len(params)])),
        input_grad=x._replace(data=grads[len(params)]) if isinstance(x, PackedSequence) else grads[len(params)],
        initial_grads=dict(zip(names, grads[len(params) + 1: len(params) + 1 + len(names)])),
        meta={"engine": "torch.autograd on gradlab's unrolled model (gradlab.engine.reference)"},
    )


def compare(result: Trace, reference: Trace) -> list[tuple[str, float, float]]:
    """Per quantity: (name, max absolute error, relative error ‖a − b‖∞ / ‖b‖∞)."""
    pairs = [(name, result.param_grads[name], ref) for name, ref in reference.param_grads.items()]
    pairs.append(("dx", result.input_grad, reference.input_grad))
    pairs += [(f"d{n}0", result.initial_grad(n), reference.initial_grad(n)) for n in reference.names]
    for n in reference.names:
        for k in range(reference.num_layers):
            for d in range(reference.num_directions):
                where = f"layer {k}" + (", reverse" if d else "")
                pairs.append((f"d{n}_t ({where})", result.grad(n, k, d), reference.grad(n, k, d)))
    rows = []
    for name, a, b in pairs:
        a, b = data_of(a), data_of(b)
        err = (a - b).abs().max().item() if a.numel() else 0.0
        scale = b.abs().max().item() if b.numel() else 0.0
        rel = err / scale if scale > 0 else (0.0 if err == 0 else float("inf"))
        rows.append((name, err, rel))
    return rows
