"""The autograd twin of :func:`gradlab.engine.bptt.bptt`: the same quantities from torch.autograd.

Every h_t and c_t is captured at its hook point in the forward pass, and one call of
``torch.autograd.grad`` on L = ⟨output, grad_output⟩ + ⟨final state, grad_state⟩ returns the
gradients on the parameters, the input, the initial state and every captured state.
"""

from __future__ import annotations

from typing import Optional

import torch

from gradlab.engine.bptt import BPTTResult, GradState
from gradlab.models.hooks import attached
from gradlab.models.recurrent import RecurrentModel, State


def autograd_reference(model: RecurrentModel, x: torch.Tensor, grad_output: torch.Tensor,
                       state: Optional[State] = None, grad_state: Optional[GradState] = None) -> BPTTResult:
    """Same arguments and result as ``bptt``, computed by autograd."""
    n_state = len(model.state_names)
    L = model.num_layers
    batched = x.dim() == 3
    x_leaf = x.detach().clone().requires_grad_(True)
    if state is None:
        B = x.shape[0 if model.batch_first else 1] if batched else None
        shape = (L, B, model.hidden_size) if batched else (L, model.hidden_size)
        state = tuple(x.new_zeros(shape) for _ in range(n_state))
    parts = (state,) if isinstance(state, torch.Tensor) else tuple(state)
    leaves = [p.detach().clone().requires_grad_(True) for p in parts]
    captured: dict[tuple[str, int, int], torch.Tensor] = {}

    def capture(name: str, k: int):
        def fn(tensor: torch.Tensor, t: Optional[int]) -> None:
            captured[(name, k, t)] = tensor
        return fn

    pairs = [(getattr(model, f"hook_{n}")[k], capture(n, k)) for n in model.state_names for k in range(L)]
    with torch.enable_grad(), attached(pairs):
        output, final = model(x_leaf, leaves[0] if n_state == 1 else tuple(leaves))
        loss = (output * grad_output).sum()
        finals = (final,) if n_state == 1 else final
        if grad_state is not None:
            ends = (grad_state,) if isinstance(grad_state, torch.Tensor) else grad_state
            loss = loss + sum((f * g).sum() for f, g in zip(finals, ends))
        names = [n for n, _ in model.named_parameters()]
        keys = list(captured)
        wrt = [p for _, p in model.named_parameters()] + [x_leaf] + leaves + [captured[k] for k in keys]
        grads = torch.autograd.grad(loss, wrt, allow_unused=True)
    grads = [torch.zeros_like(w) if g is None else g for g, w in zip(grads, wrt)]
    params = dict(zip(names, grads[: len(names)]))
    dx = grads[len(names)]
    initial = grads[len(names) + 1: len(names) + 1 + n_state]
    by_key = dict(zip(keys, grads[len(names) + 1 + n_state:]))
    T = output.shape[1 if (batched and model.batch_first) else 0]

    def per_layer(name: str) -> list[torch.Tensor]:
        return [torch.stack([by_key[(name, k, t)] for t in range(T)]).reshape(T, -1, model.hidden_size)
                for k in range(L)]

    return BPTTResult(
        params=params, dx=dx, dh0=initial[0], dc0=initial[1] if n_state == 2 else None,
        dh=per_layer("h"), dc=per_layer("c") if n_state == 2 else None,
        output=output.detach(), final=tuple(f.detach() for f in finals) if n_state == 2 else finals[0].detach(),
    )


def compare(result: BPTTResult, reference: BPTTResult) -> list[tuple[str, float, float]]:
    """Per quantity: (name, max absolute error, relative error ‖a − b‖∞ / ‖b‖∞)."""
    pairs = [(name, result.params[name], ref) for name, ref in reference.params.items()]
    pairs += [("dx", result.dx, reference.dx), ("dh0", result.dh0, reference.dh0)]
    if reference.dc0 is not None:
        pairs.append(("dc0", result.dc0, reference.dc0))
    for k, ref in enumerate(reference.dh):
        pairs.append((f"dh_t (layer {k})", result.dh[k], ref))
    for k, ref in enumerate(reference.dc or []):
        pairs.append((f"dc_t (layer {k})", result.dc[k], ref))
    rows = []
    for name, a, b in pairs:
        err = (a - b).abs().max().item() if a.numel() else 0.0
        scale = b.abs().max().item() if b.numel() else 0.0
        rel = err / scale if scale > 0 else (0.0 if err == 0 else float("inf"))
        rows.append((name, err, rel))
    return rows
