"""The forward pass the backward sweeps need: every layer's and direction's tape, by the
architecture's own forward sweep (compiled, forward_steps.cpp, where available), or by torch's fused
kernels with the tape rebuilt from their states (``gradlab/engine/fused.py``: LSTMs with a projection,
CUDA, no compiler); and what the model returns, read from the tapes."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from gradlab.engine.fused import fused_function, fused_layer
from gradlab.models.architectures.compiled import kernels
from gradlab.models.layout import Packing, along_time, within_length_reversal
from gradlab.models.recurrent import RecurrentModel


def sweep_order(direction: int, lengths: Optional[torch.Tensor], T: int):
    """The map between input order and the order a direction sweeps its sequence [T, B, …] in (its own
    inverse): nothing forward; the reverse direction runs from each sample's own last position."""
    if not direction:
        return lambda seq: seq
    if lengths is None:
        return lambda seq: seq.flip(0)
    positions = within_length_reversal(lengths, T)
    return lambda seq: along_time(seq, positions)


def forward_tapes(model: RecurrentModel, x_tm: torch.Tensor, init: tuple[torch.Tensor, ...],
                  lengths: Optional[torch.Tensor] = None, dropout_masks: Optional[list] = None,
                  packing: Optional[Packing] = None, fused: bool = True):
    """Each layer's and direction's forward (no autograd): the architecture's own ``forward_sweep``
    where its compiled steps can run (forward_steps.cpp: CPU, float32/float64, no projection), else
    torch's fused kernel for the layer (``gradlab/engine/fused.py``) and the architecture's
    ``tape_from_states``; with ``fused=False`` (and for the linear SRN, which torch lacks) always
    ``forward_sweep`` (its eager steps where the compiled ones cannot run).

    x_tm: [T, B, I] (padded past ``lengths`` [B], if given; ``packing`` its PackedSequence structure);
    init: one [L·D, B, H] per state name; dropout_masks: the multiplier [T, B, D·H] on each layer's
    output but the last, or None. Returns (inputs, tapes): every layer's input sequence [T, B, in],
    bottom first, and the tapes at index k·D + d, each in the order its direction swept (the reverse
    direction's from each sample's last position)."""
    arch, D, T = model.architecture, model.num_directions, x_tm.shape[0]
    P = model.output_size
    if packing is not None:
        lengths = packing.lengths
    compiled = kernels(x_tm) is not None and not model.proj_size
    use_fused = fused and not compiled and fused_function(model) is not None
    inputs, tapes, seq = [], [], x_tm
    with torch.no_grad(), torch.autocast(x_tm.device.type, enabled=False):  # in the model's own dtype
        for k in range(model.num_layers):
            inputs.append(seq)
            layer_init = [tuple(s[k * D + d] for s in init) for d in range(D)]
            out = fused_layer(model, k, seq, tuple(s[k * D:(k + 1) * D] for s in init), packing) if use_fused else None
            for d in range(D):
                w_ih, w_hh, b_ih, b_hh = model.layer_parameters(k, d)
                extra = model.extra_weights(k, d)
                flip = sweep_order(d, lengths, T)
                # the projection commutes with the reordering of steps: reorder its narrower side
                before = seq.shape[-1] <= w_ih.shape[0]
                if arch.bias_hh_is_redundant and b_hh is not None:  # both biases in the one projection
                    b_ih, b_hh = (b_hh if b_ih is None else b_ih + b_hh), None
                x_proj = F.linear(flip(seq), w_ih, b_ih) if before else flip(F.linear(seq, w_ih, b_ih))
                if out is None:
                    tapes.append(arch.forward_sweep(x_proj, layer_init[d], w_hh, b_hh, **extra))
                else:
                    h = torch.cat((layer_init[d][0].unsqueeze(0), flip(out[..., d * P:(d + 1) * P])))
                    tapes.append(arch.tape_from_states(x_proj, h, layer_init[d], w_hh, b_hh, **extra))
            if out is None:  # the layer's output as torch's packed kernels give it: zero past each length
                outputs = [sweep_order(d, lengths, T)(tapes[k * D + d].h[1:]) for d in range(D)]
                out = zero_past_lengths(torch.cat(outputs, dim=-1) if D > 1 else outputs[0], lengths)
            seq = out
            if dropout_masks is not None and k < model.num_layers - 1:
                seq = seq * dropout_masks[k]
    return inputs, tapes


def outputs_of(model: RecurrentModel, tapes: list, lengths: Optional[torch.Tensor] = None):
    """What the model returns, from its tapes: (the top layer's output [T, B, D·H], time-major in
    input order, zero past each sample's length with ``lengths``; the final state, one [L·D, B, ·]
    per state name, each sample's after its own last step with ``lengths``)."""
    L, D = model.num_layers, model.num_directions
    T, B = tapes[0].h.shape[0] - 1, tapes[0].h.shape[1]
    top = [sweep_order(d, lengths, T)(tapes[(L - 1) * D + d].h[1:]) for d in range(D)]
    batch = torch.arange(B, device=tapes[0].h.device)
    last = (lengths - 1).clamp_min(0).to(batch.device) if lengths is not None else torch.full_like(batch, T - 1)
    states = [[tape.h[1:][last, batch], *([tape.c[1:][last, batch]] if hasattr(tape, "c") else [])]
              for tape in tapes]
    finals = tuple(torch.stack([st[i] for st in states]) for i in range(len(model.state_names)))
    return zero_past_lengths(torch.cat(top, dim=-1) if D > 1 else top[0], lengths), finals


def zero_past_lengths(seq: torch.Tensor, lengths: Optional[torch.Tensor]) -> torch.Tensor:
    """seq [T, B, F] with zeros past each sample's length [B] (where a packed batch has no state), as
    torch's ``pad_packed_sequence`` gives a packed output; seq itself without lengths."""
    if lengths is None:
        return seq
    valid = torch.arange(seq.shape[0], device=seq.device).unsqueeze(1) < lengths.to(seq.device).unsqueeze(0)
    return seq.masked_fill(~valid.unsqueeze(-1), 0)


def check_dropout(model: RecurrentModel, dropout_masks: Optional[list], caller: str,
                  takes_masks: bool = True) -> Optional[list]:
    """The masks a sweep must apply between layers: None in eval mode or without dropout; refused
    when the model would draw them and the caller has not given the ones its forward used."""
    if not (model.training and model.dropout and model.num_layers > 1):
        return None
    if dropout_masks is None or len(dropout_masks) != model.num_layers - 1:
        remedy = (f"pass dropout_masks= (the {model.num_layers - 1} masks its forward used) or call model.eval()"
                  if takes_masks else "call model.eval()")
        raise ValueError(f"{caller}: the model has dropout={model.dropout} between layers in training mode; {remedy}")
    return dropout_masks
