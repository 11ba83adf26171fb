"""record(): one forward and backward pass with tensor hooks on every state at every step.

In the forward pass each hook point hands over its tensor with the step ``t``; a tensor hook is
registered on it there, with ``t`` and the layer bound, and fires in the backward pass with the
total gradient of exactly that tensor — what ``torch.autograd.grad(loss, h_t)`` returns. The
backward pass is ``torch.autograd.grad`` onto the initial state, so the parameters' ``.grad`` are
left untouched.

Which engine ran is said in ``trace.meta["engine"]``: the plain norms and tensors come from
autograd; the log10 norms (``log_domain=True``, the default) from a second, hand-derived
log-domain pass (:func:`gradlab.bptt`) on the same ∂L/∂output.
"""

from __future__ import annotations

import inspect
from typing import Callable, Optional

import torch
from torch import nn

from gradlab.engine.bptt import as_gradlab_model, bptt, valid_positions
from gradlab.engine.numerics import stable_norm
from gradlab.engine.trace import Trace
from gradlab.models.hooks import attached
from gradlab.models.recurrent import State, as_state, state_parts

def takes_two_arguments(fn: Callable) -> bool:
    """Whether ``fn`` can be called with two positional arguments (output, final state)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return any(p.kind is p.VAR_POSITIONAL for p in params) or len(positional) >= 2


#: With ``full=None`` the tensors are kept when one state's gradients have at most this many
#: elements (T·B·H·layers); longer runs keep only the norms.
FULL_TENSOR_LIMIT = 2**24


def record(
    model: nn.Module,
    x: torch.Tensor,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    state: Optional[State] = None,
    full: Optional[bool] = None,
    log_domain: bool = True,
) -> Trace:
    """Run ``model`` on ``x``, back-propagate ``loss_fn(output)`` and return the :class:`Trace`.

    model: a gradlab SRN/LSTM/GRU, or a torch nn.RNN/LSTM/GRU (copied with ``from_torch``).
    x: [T, B, I] ([B, T, I] if batch_first; [T, I] unbatched), or a PackedSequence (then
        ``trace.mask`` marks the positions past each sample's length, and the norms are masked there).
    loss_fn: receives exactly the ``output`` tensor the model returns ([T, B, D·H] laid out like x,
        the top layer's h_t) — and, if it takes two arguments, the final state as the model returns
        it too (h_n, or (h_n, c_n)) — and returns a scalar tensor.
    state: the initial state as the model takes it (zeros when None).
    full: keep the full gradient tensors; None keeps them up to ``FULL_TENSOR_LIMIT`` elements.
    log_domain: also run the hand-derived log-domain backward pass on the same ∂L/∂output, for
        ``trace.log10_grad_norms``: exact where the plain norms under- or overflow.
    """
    model = as_gradlab_model(model, "record")
    layout = model.layout_of(x)
    x_tm = layout.time_major(x)
    T, B = x_tm.shape[:2]
    L, D, H = model.num_layers, model.num_directions, model.hidden_size
    names = model.state_names
    if full is None:
        full = T * B * H * L * D <= FULL_TENSOR_LIMIT
    init = model.initial_state(state, layout, B, x_tm)
    leaves = tuple(layout.state_out(p).detach().clone().requires_grad_(True) for p in init)
    norm_kw = {"dtype": torch.float64, "device": x_tm.device}
    norms = {n: torch.zeros(L, D, T, B, **norm_kw) for n in names}
    explicit_norms = torch.zeros(L, D, T, B, **norm_kw)
    grads = {n: x_tm.new_zeros(L, D, T, B, H) for n in names} if full else None
    explicit_grads = x_tm.new_zeros(L, D, T, B, H) if full else None
    top_explicit = x_tm.new_zeros(T, B, D * H)  # ∂L/∂output, time-major, for the log-domain pass
    batch = torch.arange(B, device=x_tm.device)
    lengths = layout.lengths if layout.lengths is not None else torch.full_like(batch, T)
    last = [lengths - 1, torch.zeros_like(batch)][:D]  # each direction's last position: where ∂L/∂h_n enters
    at_last = x_tm.new_zeros(L, D, B, H)  # the explicit gradient through the output there

    def keep_step(name: str, k: int, d: int, t, g: torch.Tensor) -> None:
        where = (t,) if isinstance(t, int) else (t, batch)  # t: a position, or each sample's ([B])
        if full:  # norms follow from the kept tensors in one call at the end
            grads[name][(k, d) + where] = g.reshape(B, H)
        else:
            norms[name][(k, d) + where] = stable_norm(g.reshape(B, H))

    def keep_sequence(k: int, d: int, g: torch.Tensor) -> None:
        g = g.reshape(T, B, H)
        explicit_norms[k, d] = stable_norm(g)
        at_last[k, d] = g[last[d], batch]
        if full:
            explicit_grads[k, d] = g
        if k == L - 1:
            top_explicit[..., d * H:(d + 1) * H] = g

    def on_state(name: str, k: int, d: int):
        def hook(tensor: torch.Tensor, t: Optional[int]) -> None:
            if tensor.requires_grad:
                tensor.register_hook(lambda g: keep_step(name, k, d, t, g))
        return hook

    def on_output(k: int, d: int):
        def hook(seq: torch.Tensor, t: Optional[int]) -> None:
            if seq.requires_grad:
                seq.register_hook(lambda g: keep_sequence(k, d, g))
        return hook

    directions = [(k, d) for k in range(L) for d in range(D)]
    pairs = [(model.hook_point(n, k, d), on_state(n, k, d)) for n in names for k, d in directions]
    pairs += [(model.hook_point("out", k, d), on_output(k, d)) for k, d in directions]
    reads_final = takes_two_arguments(loss_fn)
    with attached(pairs):
        output, final = model(x, as_state(leaves))
        loss = loss_fn(output, final) if reads_final else loss_fn(output)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ValueError("loss_fn must return a scalar tensor")
        finals = state_parts(final)
        got = torch.autograd.grad(loss.reshape(()), leaves + (finals if reads_final else ()), allow_unused=True)
    initial = got[:len(leaves)]
    grad_final = tuple(layout.state_in(g if g is not None else torch.zeros_like(f)) for g, f in
                       zip(got[len(leaves):], finals)) if reads_final else None  # [L·D, B, H] each
    if grad_final is not None:  # the explicit part at each direction's last step includes ∂L/∂h_n
        with_final = at_last + grad_final[0].view(L, D, B, H)
        for k, d in directions:
            explicit_norms[k, d, last[d], batch] = stable_norm(with_final[k, d])
            if full:
                explicit_grads[k, d, last[d], batch] = with_final[k, d]
    if full:
        norms = {n: stable_norm(grads[n]) for n in names}
    engine = "autograd with tensor hooks (gradlab.record)"
    log10_norms = explicit_log10 = None
    if log_domain:
        grad_output = layout.restore(top_explicit)
        grad_state = None if grad_final is None else as_state(tuple(layout.state_out(g) for g in grad_final))
        logd = bptt(model, x, grad_output, state=state, grad_state=grad_state, log_domain=True)
        log10_norms, explicit_log10 = logd.log10_norms, logd.explicit_log10_norms
        engine += "; log10 norms from the hand-derived log-domain BPTT (gradlab.bptt)"
    to_numpy = lambda t: t.cpu().numpy()  # noqa: E731
    return Trace(
        kind=model.kind, hidden_size=H,
        norms={n: to_numpy(v) for n, v in norms.items()},
        explicit_norms=to_numpy(explicit_norms),
        log10_norms=log10_norms, explicit_log10_norms=explicit_log10,
        grads=grads, explicit_grads=explicit_grads,
        loss=float(loss.detach()),
        initial_grads={n: (g if g is not None else torch.zeros_like(p)).detach()
                       for n, g, p in zip(names, initial, leaves)},
        mask=valid_positions(layout.lengths, T, B),
        meta={"engine": engine, "dtype": str(x_tm.dtype).replace("torch.", ""), "device": str(x_tm.device)},
    )

