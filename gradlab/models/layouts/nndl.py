"""The NNDL practice book's parameters (chapter 6, seed 000), row-vector layout x W + h U + b.

SRN: W [I, H], U [H, H], b [1, H].
LSTM: W_i, W_f, W_o, W_c [I, H]; U_i, U_f, U_o, U_c [H, H]; b_i, b_f, b_o, b_c [1, H]
(the book's candidate cell state c̃ is torch's gate g).
"""

from __future__ import annotations

from typing import Mapping

import torch

from gradlab.models.layouts.common import as_tensor, build_single_layer, require, split_single_layer
from gradlab.models.recurrent import RecurrentModel

# torch's gate letter → the book's letter
_LSTM = {"i": "i", "f": "f", "g": "c", "o": "o"}


def from_nndl(params: Mapping[str, object], kind: str, batch_first: bool = True) -> RecurrentModel:
    """A one-layer gradlab SRN (tanh, as in the book) or LSTM from the book's parameters
    (a state_dict of the book's module, or any mapping of these names to arrays).

    batch_first: True (the default) takes inputs [B, T, I] as the book's layers do.
    """
    if kind == "srn":
        require(params, ["W", "U", "b"], "NNDL SRN")
        W = as_tensor(params["W"])
        return build_single_layer("srn", [W], [as_tensor(params["U"], W)], [as_tensor(params["b"], W)], batch_first)
    if kind == "lstm":
        names = [f"{m}_{_LSTM[g]}" for m in ("W", "U", "b") for g in "ifgo"]
        require(params, names, "NNDL LSTM")
        W0 = as_tensor(params["W_i"])
        get = lambda m: [as_tensor(params[f"{m}_{_LSTM[g]}"], W0) for g in "ifgo"]  # noqa: E731
        return build_single_layer("lstm", get("W"), get("U"), get("b"), batch_first)
    raise ValueError(f"the NNDL book has SRN and LSTM layers; got kind {kind!r}")


def to_nndl(model: RecurrentModel) -> dict[str, torch.Tensor]:
    """The book's parameters of a one-layer SRN (tanh) or LSTM; b = bias_ih + bias_hh, shape [1, H]."""
    if model.kind == "srn" and model.nonlinearity != "tanh":
        raise ValueError("the NNDL SRN uses tanh; this SRN uses " + model.nonlinearity)
    if model.kind not in ("srn", "lstm"):
        raise ValueError(f"the NNDL book has SRN and LSTM layers; this is a {model.kind}")
    w_in, w_rec, bias = split_single_layer(model)
    if model.kind == "srn":
        return {"W": w_in[0], "U": w_rec[0], "b": bias[0].reshape(1, -1)}
    out = {}
    for m, blocks in (("W", w_in), ("U", w_rec), ("b", bias)):
        for g, block in zip("ifgo", blocks):
            out[f"{m}_{_LSTM[g]}"] = block.reshape(1, -1) if m == "b" else block
    return out
