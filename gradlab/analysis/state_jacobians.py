"""The full state of a stack and its one-step Jacobians, for theory and the Jacobian spectra.

The full state s is every layer's h (and c), flattened in the order (layer, state name, unit):
S = L · len(state_names) · H. One layer's Jacobians come from its architecture's derived formulas
(``step_jacobians``); a stack couples its layers within a step, so there torch.func.jacrev
differentiates :meth:`RecurrentModel.step`.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch
from torch.func import jacrev, vmap

from gradlab.engine.forward import forward_tapes
from gradlab.models.recurrent import RecurrentModel


def state_size(model: RecurrentModel) -> int:
    return model.num_layers * len(model.state_names) * model.hidden_size


def flatten_state(parts: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """One [L, B, H] tensor per state name → the full state [B, S]."""
    L, B, H = parts[0].shape
    return torch.stack(parts, dim=1).permute(2, 0, 1, 3).reshape(B, -1)


def flat_step(model: RecurrentModel) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """One step of all layers as a function of (full state s [S], x_t [I]) → s after the step [S]."""
    L, H, n = model.num_layers, model.hidden_size, len(model.state_names)

    def step(s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        parts = s.reshape(L, n, H).unbind(1)  # one [L, H] per state name
        return torch.stack(model.step(x, parts), dim=1).reshape(-1)

    return step


def state_jacobians(model: RecurrentModel, xs: torch.Tensor, s: torch.Tensor) -> Iterator[torch.Tensor]:
    """The full state Jacobian ∂s_t/∂s_{t−1}, [B, S, S], for every step t of the input xs [T, B, I]
    driven from the full state s [B, S]. A bidirectional model has no such map and is refused."""
    if model.proj_size:
        raise ValueError("the state Jacobians are written for h and c of one width; a projected LSTM (proj_size) "
                         "is not supported")
    if model.bidirectional:
        raise ValueError("a bidirectional model has no one-step state map (its reverse direction reads the future); "
                         "state Jacobians, Lyapunov exponents and Jacobian spectra are defined per direction only")
    if model.num_layers == 1:  # the engine's forward with its tape (forward_tapes), then (JAC-*)
        init = tuple(part.unsqueeze(0) for part in s.reshape(s.shape[0], -1, model.hidden_size).unbind(1))
        with torch.no_grad():
            (tape,) = forward_tapes(model, xs, init)[1]
            yield from model.architecture.step_jacobians(tape, model.layer_parameters(0)[1].detach())
        return
    step = flat_step(model)
    jac, batched_step = vmap(jacrev(step, argnums=0)), vmap(step)
    for t in range(xs.shape[0]):
        yield jac(s, xs[t])
        s = batched_step(s, xs[t])
