"""``watch(backward="gradlab")``: on a recorded step, the watched module's backward pass is the
sweep that records it.

By default a recorded step pays twice for the backward pass through a watched module: torch's fused
backward (which the user's training needs) and gradlab's log-domain sweep (which the trace needs).
With ``backward="gradlab"`` the watch hands the fused forward's outputs back to the model through
:class:`SweptBackward`, an autograd Function whose inputs are the module's input, initial state and
parameters and whose outputs hold the same values as the fused ones. torch's graph for the module is
dropped with the outputs it made, so its backward never runs; when the backward pass brings the
gradients to the outputs, the one total sweep of ``trace_of_run(with_params=True)`` gives the trace
and ∂L/∂(input, initial state, parameters) (eq. PARAM-grads in docs/derivations.md), which autograd
passes on and accumulates into ``.grad`` as it would torch's.

The gradients are torch's to the dtype's accuracy (float64: 1e-10 relative in the tests), not bit for
bit: the sums run in another order. The Function is once differentiable (``create_graph=True``
through it is refused by torch). Under autocast the recomputation runs in float32 and cannot stand
in for the low-precision backward: those steps keep torch's backward (``trace.meta["backward"]``).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch.autograd.function import once_differentiable
from torch.nn.utils.rnn import PackedSequence

#: what ``trace.meta["backward"]`` says on a recorded step, by who ran the module's backward pass
BACKWARD_NOTES = {
    "torch": "torch's fused backward (the recorded sweep ran beside it)",
    "gradlab": "gradlab's recorded sweep (with the parameter gradients), in place of torch's fused backward",
}
BACKWARDS = tuple(BACKWARD_NOTES)


class SweptBackward(torch.autograd.Function):
    """outputs = the fused forward's (detached) outputs; backward = ``gradients(grads, needed)``."""

    @staticmethod
    def forward(ctx, gradients: Callable, fused: Sequence[torch.Tensor], *inputs: torch.Tensor):
        ctx.gradients = gradients
        ctx.set_materialize_grads(False)  # an output the loss did not read brings None
        return tuple(fused)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads):
        return (None, None, *ctx.gradients(grads, ctx.needs_input_grad[2:]))


def swept_outputs(fused, inputs: list[torch.Tensor], gradients: Callable):
    """The fused module's ``(output, final state)`` with the same values, whose backward pass is
    ``gradients(grads, needed)``: grads are ∂L/∂(output or its packed data, each final-state part),
    None where the loss did not read one; it returns ∂L/∂ each of ``inputs`` (the input or its packed
    data, each initial-state part given, each parameter), None where not ``needed``."""
    out, final = fused
    finals = (final,) if isinstance(final, torch.Tensor) else tuple(final)
    out_data = out.data if isinstance(out, PackedSequence) else out
    values = tuple(t.detach() for t in (out_data, *finals))
    swept = SweptBackward.apply(gradients, values, *inputs)
    new_out = out._replace(data=swept[0]) if isinstance(out, PackedSequence) else swept[0]
    new_final = swept[1] if isinstance(final, torch.Tensor) else type(final)(swept[1:])
    return new_out, new_final
