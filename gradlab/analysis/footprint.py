"""The least memory an analysis or a training run will hold, from its sizes alone, so that one
that cannot fit is refused before anything is allocated (a lower bound: the real peak is higher).

Each function returns the bytes by the option that drives them — "hidden" (weights: G·H·(H + in)
per layer, G = 4 for the widest, the LSTM) and "length" (everything per step) — so a refusal can
name the flag to change.
"""

from __future__ import annotations

from typing import Optional

from gradlab.common.memory import beyond_memory
from gradlab.common.options import InvalidOption
from gradlab.engine.checkpointed import segment_length

GATES = 4  # the LSTM's, the widest stack of the three
INDEX_BYTES = 8  # one int64 symbol (or one float64 feature) of the data per step


def weights_bytes(hidden: int, layers: int, itemsize: int) -> int:
    return layers * GATES * hidden * (2 * hidden + 2) * itemsize


def analysis_bytes(length: int, batch: int, hidden: int, layers: int, itemsize: int) -> dict[str, int]:
    """gradlab analyze: the batch, the [L, T, B] float64 norms it keeps (log10 and plain, h and c,
    explicit: six arrays), the √T checkpoints and one segment's tape."""
    S = segment_length(length)
    per_step = batch * length * (INDEX_BYTES + 6 * layers * 8)
    working = layers * batch * hidden * itemsize * (2 * (length // S + 1) + S * (GATES + 2))
    return {"hidden": weights_bytes(hidden, layers, itemsize), "length": per_step + working}


def training_bytes(length: int, examples: int, batch: int, hidden: int, layers: int, itemsize: int) -> dict[str, int]:
    """gradlab train: the data of every split, the weights with their gradients and two optimiser
    moments, and one batch's activations kept for autograd."""
    return {"hidden": 4 * weights_bytes(hidden, layers, itemsize),
            "length": examples * length * INDEX_BYTES + layers * batch * length * (GATES + 2) * hidden * itemsize}


def refuse_beyond_memory(parts: dict[str, int], fields: Optional[dict[str, str]] = None) -> None:
    """Raise InvalidOption naming the largest part's option when the parts together cannot fit."""
    problem = beyond_memory(sum(parts.values()))
    if problem is not None:
        field = max(parts, key=parts.get)
        raise InvalidOption(f"the run {problem}", (fields or {}).get(field, field))
