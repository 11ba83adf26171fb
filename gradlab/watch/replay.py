"""Re-running a forward that has already run, with the random numbers it drew.

On a recorded step the watch runs gradlab's unrolled copy of a module after torch's fused forward
(its forward hook replaces the fused output with the copy's, whose every state autograd can see).
Dropout between layers draws its masks from torch's CPU generator: the watch saves the
generator's state before the fused forward, rewinds to it for the copy, which then draws the very
same masks (``gradlab/models/dropout.py``), and checks that

- the generator ends where the fused forward left it (the same numbers were drawn: an unwatched
  run from the same seed continues identically), and
- the copy's output and final state equal the fused ones (to ``REPLAY_TOLERANCE`` of their size).

If either fails, the generator is put back where the fused forward left it and the record is
refused with one line. On CUDA, cuDNN draws the mask inside its fused kernel, out of reach; a
recorded step with dropout there is refused (call ``model.eval()`` for it, or set dropout=0).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

#: max |copy − fused| ≤ tolerance · max(1, max |fused|) per output tensor, by dtype
REPLAY_TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-3}


def draws_dropout(module: nn.Module) -> bool:
    """Whether a forward of ``module`` now draws dropout masks between its layers."""
    return bool(module.training and getattr(module, "dropout", 0) and getattr(module, "num_layers", 1) > 1)


def output_tensors(output) -> list[torch.Tensor]:
    """(output, h_n) or (output, (h_n, c_n)) → the plain tensors, a packed output's data first."""
    out, final = output
    first = out.data if isinstance(out, PackedSequence) else out
    return [first, *((final,) if isinstance(final, torch.Tensor) else final)]


class Replay:
    """The generator state before one fused forward, and the check of the copy's forward after it."""

    def __init__(self, key: str, module: nn.Module, device: torch.device) -> None:
        if device.type != "cpu":
            raise RuntimeError(f"watch: {key} has dropout={module.dropout} between layers in training mode on "
                               f"{device.type}, where cuDNN's masks cannot be replayed; call model.eval() for the "
                               "watched step or set dropout=0")
        self.key, self.before = key, torch.get_rng_state()

    def rewind(self) -> None:
        """Called after the fused forward: keep where it left the generator, go back to before it."""
        self.after = torch.get_rng_state()
        torch.set_rng_state(self.before)

    def check(self, fused, copy) -> None:
        """The copy's forward has run: refuse the record unless it drew and computed what the fused did."""
        drew_the_same = torch.equal(torch.get_rng_state(), self.after)
        torch.set_rng_state(self.after)
        if not drew_the_same:
            raise RuntimeError(f"watch: replaying {self.key}'s dropout drew other random numbers than torch's forward "
                               "did; this torch version draws them differently — call model.eval() for the watched "
                               "step or set dropout=0")
        for a, b in zip(output_tensors(copy), output_tensors(fused)):
            tol = REPLAY_TOLERANCE.get(b.dtype, 1e-2) * max(1.0, b.detach().abs().max().item() if b.numel() else 0.0)
            err = (a.detach() - b.detach()).abs().max().item() if b.numel() else 0.0
            if not err <= tol:
                raise RuntimeError(f"watch: replaying {self.key}'s forward with its dropout masks gave outputs "
                                   f"{err:.2g} away from torch's (allowed {tol:.2g}); refusing to record this step — "
                                   "call model.eval() for the watched step or set dropout=0")
