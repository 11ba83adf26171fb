"""record(): one forward and backward pass with tensor hooks on every state at every step.

In the forward pass each hook point hands over its tensor with the step ``t``; a tensor hook is
registered on it there, with ``t`` and the layer bound, and fires in the backward pass with the
total gradient of exactly that tensor — what ``torch.autograd.grad(loss, h_t)`` returns. The
backward pass is ``torch.autograd.grad`` onto the initial state, so the parameters' ``.grad`` are
left untouched.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from gradlab.engine.bptt import bptt
from gradlab.models.convert import from_torch
from gradlab.models.hooks import attached
from gradlab.models.recurrent import RecurrentModel, State
from gradlab.engine.numerics import stable_norm
from gradlab.engine.trace import Trace

#: With ``full=None`` the tensors are kept when one state's gradients have at most this many
#: elements (T·B·H·layers); longer runs keep only the norms.
FULL_TENSOR_LIMIT = 2**24


def _time_major_shape(model: RecurrentModel, x: torch.Tensor) -> tuple[int, int]:
    if x.dim() == 2:
        return x.shape[0], 1
    if x.dim() != 3:
        raise ValueError(f"x must be 2-D or 3-D, got {x.dim()}-D")
    return (x.shape[1], x.shape[0]) if model.batch_first else (x.shape[0], x.shape[1])


def _initial_leaves(model: RecurrentModel, x: torch.Tensor, state: Optional[State]) -> tuple[torch.Tensor, ...]:
    """The initial state as fresh leaves that require grad, so every h_t joins the graph."""
    if state is None:
        shape = (model.num_layers, model.hidden_size) if x.dim() == 2 else \
            (model.num_layers, _time_major_shape(model, x)[1], model.hidden_size)
        parts = tuple(x.new_zeros(shape) for _ in model.state_names)
    else:
        parts = (state,) if isinstance(state, torch.Tensor) else tuple(state)
    return tuple(p.detach().clone().requires_grad_(True) for p in parts)


def record(
    model: nn.Module,
    x: torch.Tensor,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    state: Optional[State] = None,
    full: Optional[bool] = None,
    log_domain: bool = True,
) -> Trace:
    """Run ``model`` on ``x``, back-propagate ``loss_fn(output)`` and return the :class:`Trace`.

    model: a gradlab SRN/LSTM/GRU, or a torch nn.RNN/LSTM/GRU (converted with ``from_torch``).
    x: [T, B, I] ([B, T, I] if batch_first; [T, I] unbatched).
    loss_fn: receives exactly the ``output`` tensor the model returns ([T, B, H] laid out like x,
        the top layer's h_t) and returns a scalar tensor.
    state: the initial state as the model takes it (zeros when None).
    full: keep the full gradient tensors; None keeps them up to ``FULL_TENSOR_LIMIT`` elements.
    log_domain: also run the hand-derived log-domain backward pass (``gradlab.engine.bptt``) on the same
        ∂L/∂output, for ``trace.log10_grad_norms``: exact where the plain norms under- or overflow.
    """
    if isinstance(model, (nn.RNN, nn.LSTM, nn.GRU)):
        model = from_torch(model)
    if not isinstance(model, RecurrentModel):
        raise TypeError(f"record takes a gradlab or torch SRN/LSTM/GRU, got {type(model).__name__}")
    T, B = _time_major_shape(model, x)
    L, H = model.num_layers, model.hidden_size
    if full is None:
        full = T * B * H * L <= FULL_TENSOR_LIMIT
    leaves = _initial_leaves(model, x, state)
    norm_kw = {"dtype": torch.float64, "device": x.device}
    norms = {n: [torch.zeros(T, B, **norm_kw) for _ in range(L)] for n in model.state_names}
    explicit_norms = [torch.zeros(T, B, **norm_kw) for _ in range(L)]
    grads = {n: [x.new_zeros(T, B, H) for _ in range(L)] for n in model.state_names} if full else None
    explicit_grads = [x.new_zeros(T, B, H) for _ in range(L)] if full else None

    def keep_step(name: str, k: int, t: int, g: torch.Tensor) -> None:
        if full:  # norms follow from the kept tensors in one call at the end
            grads[name][k][t] = g.reshape(B, H)
        else:
            norms[name][k][t] = stable_norm(g.reshape(B, H))

    top_explicit = []

    def keep_sequence(k: int, g: torch.Tensor) -> None:
        g = g.reshape(T, B, H)
        explicit_norms[k].copy_(stable_norm(g))
        if full:
            explicit_grads[k].copy_(g)
        if k == L - 1:
            top_explicit.append(g)  # ∂L/∂output, time-major

    def on_state(name: str, k: int):
        def hook(tensor: torch.Tensor, t: Optional[int]) -> None:
            if tensor.requires_grad:
                tensor.register_hook(lambda g: keep_step(name, k, t, g))
        return hook

    def on_output(k: int):
        def hook(seq: torch.Tensor, t: Optional[int]) -> None:
            if seq.requires_grad:
                seq.register_hook(lambda g: keep_sequence(k, g))
        return hook

    pairs = [(getattr(model, f"hook_{n}")[k], on_state(n, k)) for n in model.state_names for k in range(L)]
    pairs += [(model.hook_out[k], on_output(k)) for k in range(L)]
    with attached(pairs):
        output, _ = model(x, leaves if len(leaves) == 2 else leaves[0])
        loss = loss_fn(output)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ValueError("loss_fn must return a scalar tensor")
        initial = torch.autograd.grad(loss.reshape(()), leaves, allow_unused=True)
    if full:
        norms = {n: [stable_norm(g) for g in grads[n]] for n in model.state_names}
    initial_grads = {n: (g if g is not None else torch.zeros_like(p)).detach()
                     for n, g, p in zip(model.state_names, initial, leaves)}
    to_numpy = lambda ts: [t.cpu().numpy() for t in ts]  # noqa: E731
    log10_norms = None
    if log_domain:
        log10_norms = _log10_norms(model, x, state, top_explicit[0] if top_explicit else x.new_zeros(T, B, H))
    return Trace(
        model_kind=model.kind,
        loss=float(loss.detach()),
        norms={n: to_numpy(v) for n, v in norms.items()},
        explicit_norms=to_numpy(explicit_norms),
        initial_grads=initial_grads,
        grads=grads,
        explicit_grads=explicit_grads,
        log10_norms=log10_norms,
        meta={"num_steps": T, "batch": B, "hidden": H, "dtype": str(x.dtype).replace("torch.", ""),
              "device": str(x.device)},
    )


def _log10_norms(model: RecurrentModel, x: torch.Tensor, state: Optional[State],
                 grad_output_tm: torch.Tensor) -> dict[str, list[np.ndarray]]:
    """The log-domain BPTT of the same ∂L/∂output (given time-major), as [T, B] arrays per layer."""
    if x.dim() == 2:
        grad_output = grad_output_tm.squeeze(1)
    else:
        grad_output = grad_output_tm.transpose(0, 1) if model.batch_first else grad_output_tm
    res = bptt(model, x, grad_output, state=state, log_domain=True)
    out = {"h": [g.cpu().numpy() for g in res.log10_dh]}
    if res.log10_dc is not None:
        out["c"] = [g.cpu().numpy() for g in res.log10_dc]
    return out
