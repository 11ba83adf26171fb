"""The dropout masks of a forward that has already run, drawn again from the same random numbers.

On a recorded step the fused forward runs as it would without gradlab, and the engine later
rebuilds every layer's states from its input (``gradlab.engine.record.trace_of_run``). Dropout
between layers draws its masks from torch's CPU generator; the watch saves the generator's state
before the fused forward (a forward pre-hook), rewinds to it after, draws the masks again the way
torch draws them (``gradlab/models/dropout.py``), and checks that

- the generator ends where the fused forward left it (the same numbers were drawn: an unwatched
  run from the same seed continues identically; the generator is left there in any case), and,
  once the backward pass is through, that the layers recomputed with these masks give the fused
  output (to ``REPLAY_TOLERANCE`` of its size).

If either fails the record is refused with one line. On CUDA, cuDNN draws the mask inside its
fused kernel, out of reach: a recorded step with dropout there is refused (call ``model.eval()``
for it, or set dropout=0).
"""

from __future__ import annotations

import torch
from torch import nn

from gradlab.models.dropout import dropout_multiplier
from gradlab.models.layout import SequenceLayout

#: max |recomputed − fused| ≤ tolerance · max(1, max |fused|), by dtype
REPLAY_TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-3}


def draws_dropout(module: nn.Module) -> bool:
    """Whether a forward of ``module`` now draws dropout masks between its layers."""
    return bool(module.training and getattr(module, "dropout", 0) and getattr(module, "num_layers", 1) > 1)


class Replay:
    """The generator state before one fused forward, and the masks drawn again from it."""

    def __init__(self, key: str, module: nn.Module, device: torch.device) -> None:
        if device.type != "cpu":
            raise RuntimeError(f"watch: {key} has dropout={module.dropout} between layers in training mode on "
                               f"{device.type}, where cuDNN's masks cannot be replayed; call model.eval() for the "
                               "watched step or set dropout=0")
        self.key, self.before = key, torch.get_rng_state()

    def masks(self, layers: int, p: float, layout: SequenceLayout, like: torch.Tensor) -> list[torch.Tensor]:
        """Called after the fused forward: the masks [T, B, F] it drew after each layer but the last,
        drawn again from the saved state. like: [T, B, F], the shape and dtype of a layer's output."""
        after = torch.get_rng_state()
        torch.set_rng_state(self.before)
        try:
            masks = [dropout_multiplier(like, p, layout.packing) for _ in range(layers - 1)]
            drew_the_same = torch.equal(torch.get_rng_state(), after)
        finally:
            torch.set_rng_state(after)
        if not drew_the_same:
            raise RuntimeError(f"watch: replaying drew other random numbers than torch's forward did for {self.key}'s "
                               "dropout masks; refusing to record this step — call model.eval() for the watched "
                               "step or set dropout=0")
        return masks
