"""record(): one forward and backward pass with tensor hooks on every state at every step.

A :class:`Recorder` runs one forward pass of a gradlab model with its hook points attached: each
hands over its tensor with the step ``t``, and a tensor hook registered on it there, with ``t``,
the layer and the direction bound, fires in whatever backward pass follows with the total gradient
of exactly that tensor — what ``torch.autograd.grad(loss, h_t)`` returns. The initial state enters
the model as ``h_0 + z`` with ``z`` a zero leaf of the recorder's own, so ∂L/∂h_0 arrives at ``z``
last of all, which says the backward pass through this forward is complete. ``record`` drives the
backward itself (``torch.autograd.grad`` onto ``z``, so the parameters' ``.grad`` are left
untouched); ``gradlab.watch`` lets the user's own backward pass do it.

Which engine ran is said in ``trace.meta["engine"]``: the plain norms and tensors come from
autograd; the log10 norms (``log_domain=True``, the default) from a second, hand-derived
log-domain pass (:func:`gradlab.bptt`) on the same ∂L/∂output and ∂L/∂h_n.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Callable, Optional

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from gradlab.engine.bptt import as_gradlab_model, bptt, forward_tapes, outputs_of, sweep_trace, valid_positions
from gradlab.engine.numerics import stable_norm
from gradlab.engine.trace import Trace
from gradlab.models.dropout import dropout_multiplier
from gradlab.models.hooks import attached
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


class Recorder:
    """One recorded forward pass of ``model`` on ``x``; :meth:`finish` builds its Trace once a
    backward pass has gone through it (``on_done()`` is called at that moment, if given)."""

    def __init__(self, model: RecurrentModel, x, state: Optional[State] = None, full: Optional[bool] = None,
                 on_done: Optional[Callable[[], None]] = None) -> None:
        self.model, self.x, self.state, self.on_done = model, x, state, on_done
        self.layout = layout = model.layout_of(x)
        self.x_tm = x_tm = layout.time_major(x)
        T, B = x_tm.shape[:2]
        L, D, H = model.num_layers, model.num_directions, model.output_size  # H: the width of h
        self.shape = (L, D, T, B, H)
        self.sizes = model.state_sizes  # each state's width (a projected LSTM's c is wider than h)
        self.full = T * B * model.hidden_size * L * D <= FULL_TENSOR_LIMIT if full is None else full
        norm_kw = {"dtype": torch.float64, "device": x_tm.device}
        names = model.state_names
        self.norms = {n: torch.zeros(L, D, T, B, **norm_kw) for n in names}
        self.explicit_norms = torch.zeros(L, D, T, B, **norm_kw)
        self.grads = {n: x_tm.new_zeros(L, D, T, B, self.sizes[n]) for n in names} if self.full else None
        self.explicit_grads = x_tm.new_zeros(L, D, T, B, H) if self.full else None
        self.top_explicit = x_tm.new_zeros(T, B, D * H)  # ∂L/∂output, time-major, for the log-domain pass
        self.batch = torch.arange(B, device=x_tm.device)
        lengths = layout.lengths if layout.lengths is not None else torch.full_like(self.batch, T)
        self.last = [lengths - 1, torch.zeros_like(self.batch)][:D]  # each direction's last position
        self.at_last = x_tm.new_zeros(L, D, B, H)  # the explicit gradient through the output there
        self.grad_final: Optional[list] = None  # ∂L/∂h_n[, ∂L/∂c_n], [L·D, B, H] each, when the loss reads them
        self.grad_initial: dict[str, torch.Tensor] = {}
        self.dropout_masks: Optional[list] = None  # [T, B, D·H] per layer boundary, as the forward drew them
        self.done = False

    # -- the hooks ----------------------------------------------------------------------------

    def _keep_step(self, name: str, k: int, d: int, t, g: torch.Tensor) -> None:
        B, H = self.shape[3], self.sizes[name]
        where = (t,) if isinstance(t, int) else (t, self.batch)  # t: a position, or each sample's ([B])
        if self.full:  # norms follow from the kept tensors in one call at the end
            self.grads[name][(k, d) + where] = g.reshape(B, H)
        else:
            self.norms[name][(k, d) + where] = stable_norm(g.reshape(B, H))

    def _keep_sequence(self, k: int, d: int, g: torch.Tensor) -> None:
        L, D, T, B, H = self.shape
        g = g.reshape(T, B, H)
        self.explicit_norms[k, d] = stable_norm(g)
        self.at_last[k, d] = g[self.last[d], self.batch]
        if self.full:
            self.explicit_grads[k, d] = g
        if k == L - 1:
            self.top_explicit[..., d * H:(d + 1) * H] = g

    def _keep_final(self, i: int, g: torch.Tensor) -> None:
        if self.grad_final is None:
            self.grad_final = [None] * len(self.model.state_names)
        self.grad_final[i] = self.layout.state_in(g)

    def _keep_initial(self, name: str, g: torch.Tensor) -> None:
        self.grad_initial[name] = self.layout.state_out(g.detach().clone())
        if len(self.grad_initial) == len(self.model.state_names):  # the last gradient of this forward
            self.done = True
            if self.on_done is not None:
                self.on_done()

    def _pairs(self):
        model, (L, D) = self.model, self.shape[:2]

        def on_state(name: str, k: int, d: int):
            def hook(tensor: torch.Tensor, t) -> None:
                if tensor.requires_grad:
                    tensor.register_hook(lambda g: self._keep_step(name, k, d, t, g))
            return hook

        def on_output(k: int, d: int):
            def hook(seq: torch.Tensor, t) -> None:
                if seq.requires_grad:
                    seq.register_hook(lambda g: self._keep_sequence(k, d, g))
            return hook

        def on_mask(k: int):
            def hook(mask: torch.Tensor, t) -> None:
                if self.dropout_masks is None:
                    self.dropout_masks = [None] * (L - 1)
                self.dropout_masks[k] = mask.detach()
            return hook

        directions = [(k, d) for k in range(L) for d in range(D)]
        return ([(model.hook_point(n, k, d), on_state(n, k, d)) for n in model.state_names for k, d in directions]
                + [(model.hook_point("out", k, d), on_output(k, d)) for k, d in directions]
                + [(model.hook_point("dropout", k), on_mask(k)) for k in range(L - 1)])

    def forward(self):
        """Run the model with its hooks; returns (output, final state) as the model returns them."""
        layout, B = self.layout, self.x_tm.shape[1]
        init = self.model.initial_state(self.state, layout, B, self.x_tm)
        self.zeros = tuple(torch.zeros_like(p, requires_grad=True) for p in init)  # ∂L/∂h_0 arrives here
        for name, z in zip(self.model.state_names, self.zeros):
            z.register_hook(lambda g, name=name: self._keep_initial(name, g))
        start = as_state(tuple(layout.state_out(p + z) for p, z in zip(init, self.zeros)))
        with attached(self._pairs()):
            output, final = self.model(self.x, start)
        for i, part in enumerate(state_parts(final)):
            if part.requires_grad:
                part.register_hook(lambda g, i=i: self._keep_final(i, g))
        return output, final

    # -- the result ---------------------------------------------------------------------------

    def finish(self, loss: Optional[float] = None, log_domain: bool = True, engine: str = "",
               distance: bool = False) -> Trace:
        """The Trace of the recorded forward and the backward pass that went through it; with
        ``distance`` (and ``log_domain``) also the sweep seeded only at each sample's last step."""
        model, layout = self.model, self.layout
        L, D, T, B, H = self.shape
        names = model.state_names
        norms, explicit_norms = self.norms, self.explicit_norms
        if self.grad_final is not None:  # the explicit part at each direction's last step includes ∂L/∂h_n
            self.grad_final = [torch.zeros(L * D, B, self.sizes[n], dtype=self.x_tm.dtype, device=self.x_tm.device)
                               if g is None else g for g, n in zip(self.grad_final, names)]
            with_final = self.at_last + self.grad_final[0].view(L, D, B, H)
            for k in range(L):
                for d in range(D):
                    explicit_norms[k, d, self.last[d], self.batch] = stable_norm(with_final[k, d])
                    if self.full:
                        self.explicit_grads[k, d, self.last[d], self.batch] = with_final[k, d]
        if self.full:
            norms = {n: stable_norm(self.grads[n]) for n in names}
        engine = engine or "autograd with tensor hooks (gradlab.record)"
        log10_norms = explicit_log10 = None
        if log_domain:
            grad_output = layout.restore(self.top_explicit)
            grad_state = None if self.grad_final is None else as_state(tuple(layout.state_out(g)
                                                                              for g in self.grad_final))
            with torch.no_grad():
                logd = bptt(model, self.x, grad_output, state=self._detached_state(), grad_state=grad_state,
                            log_domain=True, dropout_masks=self.dropout_masks)
            log10_norms, explicit_log10 = logd.log10_norms, logd.explicit_log10_norms
            engine += "; log10 norms from the hand-derived log-domain BPTT (gradlab.bptt)"
            if distance:
                seeded = self._at_last_steps(self.top_explicit)
                with torch.no_grad():
                    dist = bptt(model, self.x, layout.restore(seeded), state=self._detached_state(),
                                grad_state=grad_state, log_domain=True, dropout_masks=self.dropout_masks)
                engine += "; the distance sweep is gradlab.bptt seeded at each sample's last step only"
        to_numpy = lambda t: t.cpu().numpy()  # noqa: E731
        zeros_like_state = lambda z: layout.state_out(torch.zeros_like(z)).detach()  # noqa: E731
        return Trace(
            kind=model.kind, hidden_size=model.hidden_size,
            norms={n: to_numpy(v) for n, v in norms.items()},
            explicit_norms=to_numpy(explicit_norms),
            log10_norms=log10_norms, explicit_log10_norms=explicit_log10,
            distance_log10_norms=dist.log10_norms if log_domain and distance else None,
            grads=self.grads, explicit_grads=self.explicit_grads, loss=loss,
            initial_grads={n: self.grad_initial.get(n, zeros_like_state(z)) for n, z in zip(names, self.zeros)},
            mask=valid_positions(layout.lengths, T, B),
            meta={"engine": engine, "dtype": str(self.x_tm.dtype).replace("torch.", ""),
                  "device": str(self.x_tm.device)},
        )

    def _at_last_steps(self, top: torch.Tensor) -> torch.Tensor:
        """∂L/∂output [T, B, D·H] kept only at each direction's last step of each sample."""
        L, D, T, B, H = self.shape
        seeded = torch.zeros_like(top)
        for d in range(D):
            part = slice(d * H, (d + 1) * H)
            seeded[self.last[d], self.batch, part] = top[self.last[d], self.batch, part]
        return seeded

    def _detached_state(self) -> Optional[State]:
        if self.state is None:
            return None
        return as_state(tuple(p.detach() for p in state_parts(self.state)))


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

    One pass (``gradlab/engine/bptt.py``): torch's fused forward, layer by layer, with the tape
    rebuilt from its states; autograd only for ∂L/∂output and ∂L/∂(final state) through ``loss_fn``;
    then one hand-derived backward sweep per layer and direction. Parameter ``.grad`` are untouched.
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
    trace = sweep_trace(model, layout, x_tm, init, g_tm, end_parts, log_domain, masks, layer_tapes, with_params=False)
    keep = T * B * model.hidden_size * model.num_layers * model.num_directions <= FULL_TENSOR_LIMIT if full is None else full
    trace = replace(trace, input_grad=None)  # bptt's fields; record leaves .grad alone
    if not keep:
        trace = replace(trace, grads=None, explicit_grads=None)
    trace.loss = float(loss.detach())
    if not log_domain:
        trace.log10_norms = trace.explicit_log10_norms = None
    trace.meta["engine"] = ("gradlab.record: torch's fused forward, autograd for dL/doutput only, one hand-derived "
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
